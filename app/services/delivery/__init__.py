"""Sending the outbox's rows: WeChat 客服 API or Twilio SMS, in order per conversation, retried, rerouted to
SMS outside WeChat's 48-hour window, and handed to staff when they cannot be delivered.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.delivery.sending import record_status
from app.services.delivery.sms_text import segment
