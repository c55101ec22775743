"""The intent of each resident message is recorded after the turn, for the reports."""
from __future__ import annotations

from app.core import transports
from app.core.extensions import db
from app.models import Message
from app.services.reports import intents as bot_insights
from integrations.rasa import ScriptedBot
from tests.factories import ConversationFactory


def _message(text: str) -> Message:
    message = Message(conversation_id=ConversationFactory().id, channel="wechat", direction="in", author="resident",
                      text=text)
    db.session.add(message)
    db.session.flush()
    return message


def test_the_bots_intent_is_stored_on_the_message(app, session):
    previous = transports.use(app).bot
    transports.use(app, bot=ScriptedBot(intents={"老年卡怎么办": "faq", "啊吧啊吧": "nlu_fallback"}))
    try:
        known, nonsense = _message("老年卡怎么办"), _message("啊吧啊吧")
        assert bot_insights.record_intent(message_id=known.id) == "faq"
        assert bot_insights.record_intent(message_id=nonsense.id) == "nlu_fallback"
        db.session.expire_all()
        assert db.session.get(Message, nonsense.id).intent == "nlu_fallback"
    finally:
        transports.use(app, bot=previous)


def test_a_recorded_intent_is_not_asked_for_again(app, session):
    previous = transports.use(app).bot
    bot = ScriptedBot(intents={"你好": "greet"}, down=False)
    transports.use(app, bot=bot)
    try:
        message = _message("你好")
        bot_insights.record_intent(message_id=message.id)
        bot.down = True  # a second ask would raise
        assert bot_insights.record_intent(message_id=message.id) == "greet"
    finally:
        transports.use(app, bot=previous)
