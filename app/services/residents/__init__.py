"""Residents: one person across WeChat, SMS and the app (identities, phone linking, the bot's sender ids),
their sign-in, profile, and ID numbers.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.residents.auth import (
    Principal,
    authenticate,
    refresh,
    request_code,
    sign_in_with_code,
    sign_in_with_wechat,
    sign_out,
    sign_out_everywhere,
    wechat_authorize_url,
)
from app.services.residents.bot_senders import conversation_by_sender
from app.services.residents.id_numbers import check_char, is_valid, mask, normalise
from app.services.residents.identities import (
    CODE_TTL,
    normalise_phone,
    pending_link,
    resident_for,
    residents_of_street,
    set_wechat_subscribed,
    street_of,
)
from app.services.residents.profile import (
    confirm_phone_link,
    get_profile,
    link_wechat,
    linked_channels,
    notifications_of,
    request_phone_link,
    update_profile,
)
