"""FAQ answers for the bot."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import String

from app.api.internal.blueprint import bp
from app.services import knowledge


class FaqAnswerOut(Schema):
    topic = String(required=True)
    title = String(required=True)
    answer = String(required=True)


@bp.get("/faq/<string:topic>")
@bp.output(FaqAnswerOut)
@bp.doc(summary="The current answer of an FAQ topic", responses=[404])
def faq_answer(topic: str):
    return knowledge.get_answer(topic=topic)
