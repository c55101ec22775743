"""The outbox: every outbound message is a row first, then a delivery job (see the delivery domain).

Kept apart from delivery because tickets queue staff replies here, while delivery opens tickets when a
message cannot be delivered: two packages keep that a line, not a circle.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.outbox.contacts import notify_contact
from app.services.outbox.messages import (
    conversation_for,
    conversation_to_reach,
    dispatch,
    queue_message,
    stage_message,
)
from app.services.outbox.subscriptions import record_event as record_subscribe_event
from app.services.outbox.subscriptions import send_if_granted as send_subscribe_if_granted
from app.services.outbox.subscriptions import template_for as subscribe_template_for
