"""SLA rules: due times per priority (and their override), breach flags raised once, the team lead told,
and the queue ordered by what is due first."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import TicketEvent
from app.models.base import utcnow
from app.services.tickets import lifecycle as tickets
from app.services.tickets import sla
from tests.factories import StaffFactory, StreetFactory


@pytest.fixture
def street(session):
    return StreetFactory()


def _ticket(street, priority="normal", *, age=timedelta(0)):
    return tickets.open_ticket(street_id=street.id, source="staff", subject=f"{priority} 工单", priority=priority,
                               now=utcnow() - age)


def _breaches(session, ticket):
    return session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                     TicketEvent.kind == "sla_breach").order_by(TicketEvent.id)).all()


@pytest.mark.parametrize("priority, first, resolution", [
    ("urgent", timedelta(minutes=5), timedelta(hours=2)),
    ("high", timedelta(minutes=30), timedelta(days=1)),
    ("normal", timedelta(hours=4), timedelta(days=3)),
    ("low", timedelta(days=1), timedelta(days=7)),
])
def test_due_times_follow_the_default_targets_per_priority(street, priority, first, resolution):
    ticket = _ticket(street, priority)
    assert ticket.first_response_due_at - ticket.created_at == first
    assert ticket.resolution_due_at - ticket.created_at == resolution


def test_config_ticket_sla_overrides_the_defaults_in_minutes(app, street, monkeypatch):
    monkeypatch.setitem(app.config, "TICKET_SLA", {"normal": [10, 60]})
    ticket = _ticket(street, "normal")
    assert ticket.first_response_due_at - ticket.created_at == timedelta(minutes=10)
    assert ticket.resolution_due_at - ticket.created_at == timedelta(hours=1)
    assert _ticket(street, "low").resolution_due_at - utcnow() > timedelta(days=6)  # others keep the default


def test_config_ticket_sla_may_be_json_text(app, monkeypatch):
    monkeypatch.setitem(app.config, "TICKET_SLA", '{"urgent": [1, 30]}')
    with app.app_context():
        assert sla.targets("urgent") == (timedelta(minutes=1), timedelta(minutes=30))


def test_changing_priority_moves_the_due_times(street):
    staff = StaffFactory(street=street)
    ticket = _ticket(street, "low")
    tickets.set_priority(ticket_id=ticket.id, staff_id=staff.id, priority="urgent")
    assert ticket.first_response_due_at - ticket.created_at == timedelta(minutes=5)
    assert ticket.resolution_due_at - ticket.created_at == timedelta(hours=2)


def test_an_unanswered_ticket_past_its_first_response_time_is_flagged_once(session, street):
    lead = StaffFactory(street=street, role="admin")
    ticket = _ticket(street, "urgent", age=timedelta(minutes=6))
    assert (ticket.id, "first_response") in sla.check_breaches()
    session.refresh(ticket)
    assert ticket.first_response_breached and not ticket.resolution_breached
    [event] = _breaches(session, ticket)
    assert event.data["target"] == "first_response" and event.data["notified"] == [lead.id]
    assert lead.display_name in event.body
    assert (ticket.id, "first_response") not in sla.check_breaches()  # a second sweep adds nothing
    assert len(_breaches(session, ticket)) == 1


def test_an_answered_ticket_is_not_flagged_for_first_response(session, street):
    staff = StaffFactory(street=street)
    ticket = _ticket(street, "urgent", age=timedelta(minutes=6))
    ticket.conversation_id = None
    ticket.first_responded_at = ticket.created_at + timedelta(minutes=1)
    session.commit()
    sla.check_breaches()
    session.refresh(ticket)
    assert not ticket.first_response_breached
    assert staff  # on duty, irrelevant to the rule


def test_a_ticket_unresolved_past_its_resolution_time_is_flagged(session, street):
    ticket = _ticket(street, "urgent", age=timedelta(hours=3))
    flagged = sla.check_breaches()
    assert {(ticket.id, "first_response"), (ticket.id, "resolution")} <= set(flagged)
    assert [e.data["target"] for e in _breaches(session, ticket)] == ["first_response", "resolution"]


def test_resolved_tickets_are_not_flagged(session, street):
    staff = StaffFactory(street=street)
    ticket = _ticket(street, "urgent", age=timedelta(hours=3))
    tickets.resolve_ticket(ticket_id=ticket.id, staff_id=staff.id)
    sla.check_breaches()
    session.refresh(ticket)
    assert not ticket.first_response_breached and not ticket.resolution_breached


def test_a_breach_without_team_lead_is_still_recorded(session, street):
    ticket = _ticket(street, "urgent", age=timedelta(minutes=10))
    sla.check_breaches()
    [event] = _breaches(session, ticket)
    assert event.data["notified"] == []


def test_the_queue_puts_what_is_due_first_on_top(session, street):
    staff = StaffFactory(street=street)
    low = _ticket(street, "low")  # first response due in a day
    urgent = _ticket(street, "urgent")  # in 5 minutes
    normal = _ticket(street, "normal")  # in 4 hours
    answered_urgent = _ticket(street, "urgent", age=timedelta(minutes=1))
    answered_urgent.first_responded_at = utcnow()  # now waits for resolution, due in ~2 hours
    session.commit()
    order = [t.id for t in tickets.queue(staff=staff, view="open")]
    assert order == [urgent.id, answered_urgent.id, normal.id, low.id]


def test_the_breached_view_lists_only_breached_open_tickets(session, street):
    staff = StaffFactory(street=street)
    late = _ticket(street, "urgent", age=timedelta(minutes=10))
    _ticket(street, "normal")
    sla.check_breaches()
    assert [t.id for t in tickets.queue(staff=staff, view="breached")] == [late.id]
    assert tickets.queue_counts(staff=staff)["breached"] == 1


def test_the_ticker_sweeps_breaches_every_minute():
    from app.core import tasks

    periods = {t.name: t.every_seconds for t in tasks.periodic()}
    assert periods["tickets.flag_sla_breaches"] == 60
    assert periods["tickets.offer_unassigned"] == 60
    assert "tickets.close_resolved" in periods
