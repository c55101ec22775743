"""Help buttons: signed presses from devices, and management of devices and contact chains (service token)."""
from __future__ import annotations

from functools import wraps

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import request

from app.api.schemas.fields import Trimmed
from app.api.schemas.help import AlertRef
from app.core.service_token import require_service_token
from app.models.help import ATTEMPT_CHANNELS, CONTACT_RELATIONS
from app.services import care
from app.services import help as help_service

bp = APIBlueprint("devices", __name__, url_prefix="/api", tag="Help devices")

# A press is three short fields; anything bigger is not a device talking to us.
MAX_PRESS_BODY = 1024
SIGNATURE_HEADER = "X-Linli-Signature"
SIGNED_ENDPOINTS = frozenset({"devices.press", "devices.heartbeat", "devices.device_checkin"})


class PressIn(Schema):
    press_id = String(required=True, validate=Length(1, 64))
    timestamp = Integer(required=True, validate=Range(min=0))


class PressOut(Schema):
    alert = Nested(AlertRef)


# An app-wide hook, registered with the blueprint: it must run before app/core/json_body.py's guard, which reads
# every JSON body (a blueprint's own hooks run after the app's).
@bp.before_app_request
def _bound_press_body():
    if request.endpoint in SIGNED_ENDPOINTS:
        request.max_content_length = MAX_PRESS_BODY  # 413 before the body is read


@bp.post("/devices/<string:device_uid>/alerts")
@bp.input(PressIn, arg_name="body")
@bp.output(PressOut, status_code=201)
@bp.doc(summary="A help button was pressed (HMAC-SHA256 signed)",
        description=f"`{SIGNATURE_HEADER}`: hex HMAC-SHA256 with the device secret over "
                    "`device_uid + '\\n' + press_id + '\\n' + timestamp`; timestamp in Unix seconds, "
                    "within 5 minutes of now. The same press_id again returns the same alert.",
        responses=[401, 403, 413, 422])
def press(device_uid: str, body):
    alert = help_service.press_button(device_uid=device_uid[:64], press_id=body["press_id"],
                                      timestamp=body["timestamp"],
                                      signature=request.headers.get(SIGNATURE_HEADER, ""))
    return {"alert": alert}


class HeartbeatIn(Schema):
    battery = Integer(required=True, validate=Range(min=0, max=100))
    interval_seconds = Integer(load_default=None, validate=Range(min=60, max=7 * 24 * 3600))
    timestamp = Integer(required=True, validate=Range(min=0))


class HeartbeatOut(Schema):
    device_uid = String()
    last_heartbeat_at = String()
    battery = Integer()
    interval_seconds = Integer()


@bp.post("/devices/<string:device_uid>/heartbeats")
@bp.input(HeartbeatIn, arg_name="body")
@bp.output(HeartbeatOut, status_code=201)
@bp.doc(summary="A help button is alive (HMAC-SHA256 signed heartbeat)",
        description=f"`{SIGNATURE_HEADER}`: hex HMAC-SHA256 with the device secret over "
                    "`'heartbeat\\n' + device_uid + '\\n' + battery + '\\n' + (interval_seconds or '') + '\\n' + "
                    "timestamp`; timestamp within 5 minutes of now and newer than the last heartbeat accepted "
                    "(else 409 `replayed_heartbeat`).",
        responses=[401, 403, 409, 413, 422])
def heartbeat(device_uid: str, body):
    health = care.record_heartbeat(device_uid=device_uid[:64], battery=body["battery"], timestamp=body["timestamp"],
                                   interval_seconds=body["interval_seconds"],
                                   signature=request.headers.get(SIGNATURE_HEADER, ""))
    return {"device_uid": device_uid[:64], "last_heartbeat_at": health.last_heartbeat_at.isoformat(),
            "battery": health.battery, "interval_seconds": health.interval_seconds}


class DeviceCheckinIn(Schema):
    timestamp = Integer(required=True, validate=Range(min=0))


class CheckinOut(Schema):
    resident_id = Integer()
    local_date = String()
    via = String()
    checked_in_at = String()


def _checkin(checkin) -> dict:
    return {"resident_id": checkin.resident_id, "local_date": checkin.local_date.isoformat(), "via": checkin.via,
            "checked_in_at": checkin.checked_in_at.isoformat()}


@bp.post("/devices/<string:device_uid>/checkins")
@bp.input(DeviceCheckinIn, arg_name="body")
@bp.output(CheckinOut, status_code=201)
@bp.doc(summary="The resident checked in today with their button (平安打卡, HMAC-SHA256 signed)",
        description=f"`{SIGNATURE_HEADER}`: hex HMAC-SHA256 with the device secret over "
                    "`'checkin\\n' + device_uid + '\\n' + timestamp`. A resident not enrolled: 409 `not_enrolled`.",
        responses=[401, 403, 409, 413, 422])
def device_checkin(device_uid: str, body):
    return _checkin(care.check_in_by_device(device_uid=device_uid[:64], timestamp=body["timestamp"],
                                            signature=request.headers.get(SIGNATURE_HEADER, "")))


def service_token_required(view):
    """Staff tools and the back office manage chains with the service token for now (no per-user auth yet)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        require_service_token()
        return view(*args, **kwargs)

    return wrapper


class DeviceIn(Schema):
    device_uid = String(required=True, validate=Length(1, 64))
    resident_id = Integer(required=True)


class DeviceOut(Schema):
    device_uid = String()
    resident_id = Integer()
    secret = String(metadata={"description": "shown once; write it into the device"})


@bp.post("/devices")
@service_token_required
@bp.input(DeviceIn, arg_name="body")
@bp.output(DeviceOut, status_code=201)
@bp.doc(summary="Register a help button for a resident", responses=[401, 404, 409])
def register(body):
    device, secret = help_service.register_device(**body)
    return {"device_uid": device.device_uid, "resident_id": device.resident_id, "secret": secret}


class ContactSchema(Schema):
    id = Integer(load_default=None)
    name = Trimmed(required=True, validate=Length(1, 50))
    phone = String(load_default=None, validate=Length(max=20))
    wechat_openid = String(load_default=None, validate=Length(max=64))
    relation = String(required=True, validate=OneOf(list(CONTACT_RELATIONS)))
    channels = List(String(validate=OneOf(list(ATTEMPT_CHANNELS))), load_default=["voice", "sms"])
    ring_seconds = Integer(load_default=30)
    wait_seconds = Integer(load_default=60)
    position = Integer(dump_only=True)


class ChainIn(Schema):
    contacts = List(Nested(ContactSchema), required=True)


class ChainOut(Schema):
    resident_id = Integer()
    contacts = List(Nested(ContactSchema))
    complete = Boolean(metadata={"description": "the chain ends with the on-duty staff group"})


def _chain(resident_id: int, contacts) -> dict:
    out = [{**{k: getattr(c, k) for k in ("id", "name", "phone", "wechat_openid", "relation", "ring_seconds",
                                         "wait_seconds", "position")},
            "channels": [x for x in c.channels.split(",") if x]} for c in contacts]
    return {"resident_id": resident_id, "contacts": out, "complete": bool(out) and out[-1]["relation"] == "staff"}


@bp.get("/residents/<int:resident_id>/help-contacts")
@service_token_required
@bp.output(ChainOut)
@bp.doc(summary="A resident's help chain in order", responses=[401, 404])
def get_chain(resident_id: int):
    return _chain(resident_id, help_service.contacts_of(resident_id=resident_id))


@bp.put("/residents/<int:resident_id>/help-contacts")
@service_token_required
@bp.input(ChainIn, arg_name="body")
@bp.output(ChainOut)
@bp.doc(summary="Replace a resident's help chain (order = call order)", responses=[401, 404, 422])
def put_chain(resident_id: int, body):
    return _chain(resident_id, help_service.replace_chain(resident_id=resident_id, contacts=body["contacts"]))


class EnrolmentIn(Schema):
    due_time = String(required=True, validate=Length(5, 5),
                      metadata={"description": "HH:MM, Asia/Shanghai: check in each day by this time"})


class EnrolmentOut(Schema):
    resident_id = Integer()
    due_time = String()
    active = Boolean()


def _enrolment(enrolment) -> dict:
    return {"resident_id": enrolment.resident_id, "due_time": enrolment.due_time.strftime("%H:%M"),
            "active": enrolment.active}


@bp.get("/residents/<int:resident_id>/checkin")
@service_token_required
@bp.output(EnrolmentOut)
@bp.doc(summary="A resident's daily check-in (平安打卡) enrolment", responses=[401, 404])
def get_checkin(resident_id: int):
    return _enrolment(care.enrolment_of(resident_id=resident_id))


@bp.put("/residents/<int:resident_id>/checkin")
@service_token_required
@bp.input(EnrolmentIn, arg_name="body")
@bp.output(EnrolmentOut)
@bp.doc(summary="Enrol a resident in the daily check-in, or change its time (from the next day)",
        responses=[401, 404, 422])
def put_checkin(resident_id: int, body):
    return _enrolment(care.enrol(resident_id=resident_id, due_time=body["due_time"]))


@bp.delete("/residents/<int:resident_id>/checkin")
@service_token_required
@bp.output({}, status_code=204)
@bp.doc(summary="End a resident's daily check-in", responses=[401, 404])
def delete_checkin(resident_id: int):
    care.unenrol(resident_id=resident_id)
    return ""
