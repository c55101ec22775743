"""The signed-in resident: profile, linked channels, notification preference, linking WeChat or a phone."""
from __future__ import annotations

from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, client_ip, current, idempotent, oauth_client_key
from app.api.v1.schemas import CodeSentOut, MeOut, MePatch, PhoneConfirmIn, PhoneLinkIn, WeChatCodeIn, mask_phone
from app.services import residents
from app.services.residents import CODE_TTL

TAG = "Mobile: me"


@bp.get("/me")
@bp.auth_required(auth)
@bp.output(MeOut)
@bp.doc(summary="The resident's profile and linked channels", tags=[TAG])
def me():
    return _me(current().resident_id)


@bp.patch("/me")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(MePatch, arg_name="body")
@bp.output(MeOut)
@bp.doc(summary="Edit name, address, or the channel notices try first", tags=[TAG], responses=[422])
def edit_me(body):
    residents.update_profile(resident_id=current().resident_id, **body)
    return _me(current().resident_id)


@bp.post("/me/channels/wechat")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(WeChatCodeIn, arg_name="body")
@bp.output(MeOut)
@bp.doc(summary="Link the WeChat user who authorised the H5 page to this resident", tags=[TAG],
        responses=[401, 409, 503])
def link_wechat(body):
    residents.link_wechat(resident_id=current().resident_id, code=body["code"], state=body["state"],
                          client_key=oauth_client_key())
    return _me(current().resident_id)


@bp.post("/me/channels/phone")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(PhoneLinkIn, arg_name="body")
@bp.output(CodeSentOut, status_code=202)
@bp.doc(summary="Text a code to a phone to link it (a WeChat-first resident)", tags=[TAG], responses=[422, 429])
def link_phone(body):
    phone = residents.request_phone_link(resident_id=current().resident_id, phone=body["phone"], client=client_ip())
    return {"phone": mask_phone(phone), "expires_in": int(CODE_TTL.total_seconds())}


@bp.post("/me/channels/phone/confirm")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(PhoneConfirmIn, arg_name="body")
@bp.output(MeOut)
@bp.doc(summary="Confirm the phone link with the texted code",
        description="409 `phone_has_account`: the phone already has an account; send the same code with "
                    "`merge: true` to merge that account into this one (the phone is texted that it was).",
        tags=[TAG], responses=[409, 422, 429])
def confirm_phone(body):
    residents.confirm_phone_link(resident_id=current().resident_id, code=body["code"], client=client_ip(),
                                 merge=body["merge"])
    return _me(current().resident_id)


def _me(resident_id: int):
    resident = residents.get_profile(resident_id=resident_id)
    linked = residents.linked_channels(resident_id=resident_id)
    channels = [{"channel": channel, "linked": address is not None,
                 "address": mask_phone(address) if channel == "sms" else None}
                for channel, address in linked.items()]
    return {**{k: getattr(resident, k) for k in ("id", "name", "phone", "address", "community", "is_elderly",
                                                   "preferred_channel")}, "channels": channels}
