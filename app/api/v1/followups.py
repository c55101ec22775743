"""The follow-up (回访) of a request, answered from the app: solved or not, and how satisfied (issue 21)."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, String
from apiflask.validators import Range

from app.api.schemas.booking import LocalDateTime
from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current, idempotent
from app.services import workorders

TAG = "Mobile: requests"


class FollowUpIn(Schema):
    solved = Boolean(required=True, metadata={"description": "false reopens the request to the same department"})
    satisfaction = Integer(validate=Range(1, 5), allow_none=True)


class FollowUpOut(Schema):
    id = Integer()
    status = String(metadata={"description": "asked, answered or expired"})
    solved = Boolean(allow_none=True)
    satisfaction = Integer(allow_none=True)
    answered_at = LocalDateTime(allow_none=True)


@bp.post("/requests/<int:request_id>/followup")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(FollowUpIn, arg_name="body")
@bp.output(FollowUpOut)
@bp.doc(summary="Answer the follow-up (回访) of a completed request, once", tags=[TAG], responses=[404, 409, 422])
def answer_followup(request_id: int, body):
    return workorders.answer_followup_of_request(resident_id=current().resident_id, request_id=request_id,
                                                 solved=body["solved"], satisfaction=body.get("satisfaction"))
