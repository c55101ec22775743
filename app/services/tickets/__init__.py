"""Tickets: the only place that writes a ticket's status. Opened by the bot, a help alert, a failed delivery or
a resident's request (诉求 / 随手拍); answered by staff, held to service levels, rated by the resident.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.tickets.lifecycle import (
    CATEGORY_LABELS,
    REOPEN_WINDOW,
    STATUS_LABELS,
    VIEWS,
    add_event,
    add_events,
    add_note,
    assign,
    awaiting_reply,
    canned_replies,
    capture_csat,
    categories,
    claim,
    get_ticket,
    holds_message,
    open_ticket,
    open_tickets,
    queue,
    queue_counts,
    reply,
    resolve_ticket,
    route_resident_message,
    set_category,
    set_priority,
    set_status,
    settle_with_alert,
    street_staff,
    timeline,
)
from app.services.tickets.requests import (
    CATEGORY_LABELS as REQUEST_CATEGORY_LABELS,
)
from app.services.tickets.requests import (
    MAX_PHOTOS,
    RATABLE,
    get_request,
    photo_content,
    rate,
    replies,
    report,
    requests_of,
    sweep_unattached_photos,
    ticket_photo_content,
    ticket_photos,
    upload_photo,
)
from app.services.tickets.sla import OPEN_STATUSES
