"""The bot asks for help on a resident's behalf ("救命", "我摔倒了")."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Nested, String
from apiflask.validators import Length

from app.api.internal.blueprint import bp
from app.api.schemas.help import AlertRef
from app.services import help as help_service


class HelpIn(Schema):
    sender = String(required=True, validate=Length(1, 40))


class HelpOut(Schema):
    alert = Nested(AlertRef)


@bp.post("/help")
@bp.input(HelpIn, arg_name="body")
@bp.output(HelpOut, status_code=201)
@bp.doc(summary="Raise a help alert for the sender's resident (joins an open one)", responses=[404, 422])
def raise_help(body):
    return {"alert": help_service.raise_alert_for_sender(sender=body["sender"])}
