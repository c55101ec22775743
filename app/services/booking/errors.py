"""The booking rules' refusals, each with the stable code clients (the bot, the app) act on."""
from __future__ import annotations

from app.core.errors import Conflict, ValidationFailed


class SlotTaken(Conflict):
    code = "slot_taken"


class SlotNotReleased(Conflict):
    code = "slot_not_released"


class SlotInPast(Conflict):
    code = "slot_in_past"


class DailyLimit(Conflict):
    code = "daily_limit"


class TooManyActive(Conflict):
    code = "too_many_active"


class TooManyFamilyMembers(Conflict):
    code = "too_many_family_members"


class ResidentTooManyActive(Conflict):
    code = "resident_too_many_active"


class ResidentDailyLimit(Conflict):
    code = "resident_daily_limit"


class PastDeadline(Conflict):
    code = "past_deadline"


class BookingSuspended(Conflict):
    code = "booking_suspended"


class InvalidIdNumber(ValidationFailed):
    code = "invalid_id_number"


class NoPatient(ValidationFailed):
    code = "no_patient"


class AlreadyHolding(Conflict):
    code = "already_holding"


class HoldExpired(Conflict):
    code = "hold_expired"


class HoldReleased(Conflict):
    code = "hold_released"


class HoldConfirmed(Conflict):
    code = "hold_confirmed"


class AlreadyWaiting(Conflict):
    code = "already_waiting"


class SeatsAvailable(Conflict):
    code = "seats_available"


class NoSlots(Conflict):
    code = "no_slots"


class NoOffer(Conflict):
    code = "no_offer"


class OfferLapsed(Conflict):
    code = "offer_lapsed"


class NotInLine(Conflict):
    code = "not_in_line"


class AmbiguousDepartment(ValidationFailed):
    code = "ambiguous_department"
