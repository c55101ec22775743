"""Two requests opening the conversation's ticket at once: the partial unique index decides, and the loser
gets the winner's ticket without losing what it had pending in its own transaction."""
from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.extensions import db
from app.models import OutboundMessage, Ticket
from app.models.base import utcnow
from app.services.outbox import messages as outbox
from app.services.tickets import lifecycle as tickets
from tests.factories import ConversationFactory
from tests.reliability.support import a_session_waits_on_a_lock, wait_until


def test_losing_the_race_to_open_a_ticket_keeps_the_callers_pending_work(app, committed):
    conversation = ConversationFactory(channel="wechat", address="oRace0001")
    db.session.commit()
    street_id = conversation.resident.community.street_id
    conversation_id, resident_id = conversation.id, conversation.resident_id
    opened = {}

    def open_with_a_reply_pending():
        with app.app_context():
            reply = outbox.stage_message(conversation_id=conversation_id, body="您的消息已转给人工客服")
            db.session.flush()
            ticket = tickets.open_ticket(street_id=street_id, source="bot", subject="我要找人工",
                                         conversation_id=conversation_id, resident_id=resident_id)
            db.session.commit()
            opened.update(ticket=ticket.id, reply=reply.id)

    first_due, resolution_due = tickets.due_times(priority="normal", since=utcnow())
    with Session(db.engine) as winner:
        winning = Ticket(street_id=street_id, source="resident", subject="人工", status="open",
                         conversation_id=conversation_id, resident_id=resident_id,
                         first_response_due_at=first_due, resolution_due_at=resolution_due)
        winner.add(winning)
        winner.flush()  # holds the index entry until it commits
        loser = threading.Thread(target=open_with_a_reply_pending)
        loser.start()
        wait_until(a_session_waits_on_a_lock, what="the second request waiting on the open ticket's index entry")
        winner.commit()
        winning_id = winning.id
        loser.join(10)

    assert opened.get("ticket") == winning_id
    db.session.expire_all()
    assert [t.id for t in db.session.scalars(select(Ticket))] == [winning_id]
    assert [row.id for row in db.session.scalars(select(OutboundMessage))] == [opened["reply"]]
