"""One-key help: devices and contact chains, raising an alert, the durable escalation that calls contacts in
order, acceptance by exactly one person, and what staff and families see of it.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.help.alerts import (
    accept_by_sms,
    accept_by_staff,
    accepted_script,
    add_note,
    answer_call_key,
    call_again,
    call_script,
    raise_alert,
    raise_alert_for_sender,
    raise_alerts,
    realert_unresolved,
    record_call_status,
    resolve_alert,
    settle_alert,
)
from app.services.help.chain_access import (
    accepted_by,
    add_delegate,
    alerts_of,
    contacts,
    delegates,
    manageable,
    remove_delegate,
    replace_contacts,
)
from app.services.help.devices import (
    MAX_CHAIN,
    authenticate_device,
    contacts_of,
    press_button,
    register_device,
    replace_chain,
    sign,
)
from app.services.help.listing import STATUS_LABELS, open_alerts
from app.services.help.provider_reports import key_to_take, read_provider_report, take_provider_report
from app.services.help.texts import OUTCOMES, call_no_key, call_passed, call_prompt, call_taken
