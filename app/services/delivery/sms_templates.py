"""What an outbox row is as an SMS: its body for Twilio, an approved template and its variables for Aliyun.

Aliyun sends only templates approved in advance (docs/channels.md, "SMS through Aliyun"). A reminder and a waitlist
offer have templates of their own whose variables are the row's subscribe-message fields; a staff reply has one
with a single ${content}; every other kind (bot replies, notices, follow-ups) goes as the generic template's
${content}. A kind whose own template is not configured in ALIYUN_SMS_TEMPLATES falls back to the generic one,
so a deployment that has only that template approved still reaches every mainland phone.
"""
from __future__ import annotations

from app.core.config import setting
from app.models import OutboundMessage
from integrations.aliyun import VARIABLE_MAX_CHARS, parse_templates
from integrations.telephony import GENERIC_TEMPLATE, TextMessage, free_text

# kind -> template whose variables are exactly the row's `template_fields` (the words to apply for: docs/channels.md)
FIELD_TEMPLATES = {"reminder": "booking_reminder", "waitlist_offer": "waitlist_offer"}
# kind -> template with one ${content} that the row's body fills
CONTENT_TEMPLATES = {"staff_reply": "staff_reply"}


def text_message(row: OutboundMessage, *, status_callback: str | None = None) -> TextMessage:
    """The row as one SMS request; `ref` ("outbox-<id>") comes back in Aliyun's receipts."""
    configured = parse_templates(setting("ALIYUN_SMS_TEMPLATES"), "ALIYUN_SMS_TEMPLATES")
    ref = f"outbox-{row.id}"
    own = FIELD_TEMPLATES.get(row.kind)
    fields = row.template_fields or {}
    # A field too long for a variable would be refused (isv.PARAM_LENGTH_LIMIT): the body goes as words instead.
    if own in configured and fields and all(0 < len(str(v)) <= VARIABLE_MAX_CHARS for v in fields.values()):
        return TextMessage(to=row.to_address, body=row.body, template=own,
                           params={k: str(v) for k, v in fields.items()}, ref=ref, status_callback=status_callback)
    own = CONTENT_TEMPLATES.get(row.kind)
    return free_text(row.to_address, row.body, template=own if own in configured else GENERIC_TEMPLATE, ref=ref,
                     status_callback=status_callback)
