"""The bot hands a conversation to staff."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, Nested, String
from apiflask.validators import Length, OneOf

from app.api.internal.blueprint import bp
from app.services import conversations


class HandoffIn(Schema):
    sender = String(required=True, validate=Length(1, 40))
    reason = String(required=True, validate=OneOf(list(conversations.SUBJECTS)))
    text = String(load_default="", validate=Length(max=2000))


class TicketRef(Schema):
    id = Integer()
    status = String()


class HandoffOut(Schema):
    ticket = Nested(TicketRef)


@bp.post("/handoff")
@bp.input(HandoffIn, arg_name="body")
@bp.output(HandoffOut, status_code=201)
@bp.doc(summary="Open a ticket for a person to answer", responses=[404, 422])
def hand_over(body):
    return {"ticket": conversations.hand_over(**body)}
