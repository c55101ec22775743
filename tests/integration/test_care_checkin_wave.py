"""A wave of missed check-ins at one deadline, taken in bulk: one set-based mark, alerts raised by batch, first steps
moved together, calls handed out in chunks and placed from threads; nobody missed, nobody raised or called twice."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from app.core.extensions import db
from app.core.redis_client import get_queue
from app.models import CheckinEnrolment, EscalationStep, HelpAlert, TicketEvent
from app.services import care
from app.services import help as help_service
from app.services.care import checkins
from app.services.help import escalation
from tests.helpers.help import make_chain
from tests.helpers.help_calls import call_requests, drain

# 09:00 in Shanghai is 01:00 UTC; the day after enrolment.
ENROLLED = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
DEADLINE = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)


def _enrol_many(help_app, n: int) -> list[tuple[int, str, str]]:
    """n enrolled residents due 09:00, each with one voice contact: (resident id, own phone, contact's phone)."""
    with help_app.app_context():
        people = []
        for _ in range(n):
            elder, contacts = make_chain(n=1, channels="voice")
            care.enrol(resident_id=elder.id, due_time="09:00", now=ENROLLED)
            people.append((elder.id, elder.phone, contacts[0].phone))
        return people


def test_a_wave_raises_exactly_the_missed_ones_once_and_calls_each_resident_once(help_db, served, twilio_stub,
                                                                                  monkeypatch):
    help_app, _ = served
    # Small batches and chunks, so the wave goes through several raise batches and several placing jobs.
    monkeypatch.setattr(checkins, "BATCH", 3)
    monkeypatch.setattr(escalation, "PLACE_CHUNK", 2)
    people = _enrol_many(help_app, 8)
    well, pressed, missed = people[0], people[1], people[2:]
    with help_app.app_context():
        care.check_in(resident_id=well[0], via="console", now=DEADLINE - timedelta(hours=1))
        earlier = help_service.raise_alert(resident_id=pressed[0], source="console", now=DEADLINE)
    drain(help_app)  # the pressed resident's own alert calls its contact
    before = len(call_requests(twilio_stub))

    with help_app.app_context():
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 7
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=20))["missed"] == 0  # marked once
    drain(help_app)

    calls = Counter(c["to"] for c in call_requests(twilio_stub)[before:])
    # Each missed resident who had no alert is called once, themself first; the one who checked in is not; the
    # one whose alert was open already is not raised again (the wave joins that alert, which is calling its chain).
    assert calls == Counter({phone: 1 for _, phone, _ in missed})
    with help_app.app_context():
        alerts = db.session.scalars(select(HelpAlert).where(HelpAlert.source == "checkin")).all()
        assert sorted(a.resident_id for a in alerts) == sorted(r for r, _, _ in missed)
        assert all((a.round, a.step, a.lead_resident, a.ticket_id is not None) == (1, 1, True, True) for a in alerts)
        linked = dict(db.session.execute(select(CheckinEnrolment.resident_id, CheckinEnrolment.last_alert_id)).all())
        assert linked[well[0]] is None and linked[pressed[0]] == earlier.id
        assert {linked[r] for r, _, _ in missed} == {a.id for a in alerts}
        attempts = db.session.scalars(select(EscalationStep).where(
            EscalationStep.alert_id.in_([a.id for a in alerts]))).all()
        assert sorted(a.to_address for a in attempts) == sorted(phone for _, phone, _ in missed)
        assert {(a.status, a.provider) for a in attempts} == {("placed", "twilio")}
        assert all(a.external_sid for a in attempts)
        # The step is on each ticket's timeline, and its due move is scheduled as advance would schedule it.
        steps = db.session.scalars(select(TicketEvent.ticket_id).where(
            TicketEvent.body.like("第1轮第1步%"), TicketEvent.ticket_id.in_([a.ticket_id for a in alerts]))).all()
        assert sorted(steps) == sorted(a.ticket_id for a in alerts)
        scheduled = set(ScheduledJobRegistry(queue=get_queue("escalation")).get_job_ids())
        assert {f"help-{a.id}-1-1-due" for a in alerts} <= scheduled

        # Every rerun finds the work done: the batch again, the first steps again, the calls again.
        ids = db.session.scalars(select(CheckinEnrolment.id)).all()
        assert care.raise_missed(enrolment_ids=ids) == 0
        assert escalation.start_many(alert_ids=[a.id for a in alerts]) == 0
        assert escalation.place_many(step_ids=[a.id for a in attempts]) == 0
    drain(help_app)
    assert len(call_requests(twilio_stub)) == before + len(missed)
    with help_app.app_context():
        assert db.session.scalar(select(func.count(HelpAlert.id))) == 1 + len(missed)
        assert db.session.scalar(select(func.count(EscalationStep.id))) == 1 + len(missed)


def test_two_runs_of_one_batch_at_once_raise_each_resident_once(help_db, served, twilio_stub):
    help_app, _ = served
    people = _enrol_many(help_app, 12)
    with help_app.app_context():
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 12
        get_queue("escalation").empty()  # the queued batch is run below, twice at once, by hand
        ids = db.session.scalars(select(CheckinEnrolment.id)).all()
    results, start = [], threading.Barrier(2)

    def run():
        with help_app.app_context():
            start.wait()
            results.append(care.raise_missed(enrolment_ids=ids, now=DEADLINE + timedelta(seconds=6)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    drain(help_app)
    assert sum(results) == 12
    assert Counter(c["to"] for c in call_requests(twilio_stub)) == Counter({phone: 1 for _, phone, _ in people})
    with help_app.app_context():
        assert db.session.scalar(select(func.count(HelpAlert.id))) == 12
        assert db.session.scalar(select(func.count(EscalationStep.id))) == 12


def test_a_wave_call_that_fails_moves_that_chain_on_at_once_and_the_others_wait(help_db, served, twilio_stub):
    help_app, _ = served
    people = _enrol_many(help_app, 3)
    twilio_stub.fail(path="/2010-04-01/Accounts/", status=500)  # the first call request of the wave fails
    with help_app.app_context():
        assert care.detect_missed(now=DEADLINE + timedelta(seconds=5))["missed"] == 3
    drain(help_app)
    with help_app.app_context():
        failed = db.session.scalar(select(EscalationStep).where(EscalationStep.status == "send_failed"))
        moved = db.session.get(HelpAlert, failed.alert_id)
        assert (moved.round, moved.step) == (1, 2)  # expedited: its contact was called next, in the same drain
        others = db.session.scalars(select(HelpAlert).where(HelpAlert.id != failed.alert_id)).all()
        assert [(a.round, a.step) for a in others] == [(1, 1), (1, 1)]
    calls = Counter(c["to"] for c in call_requests(twilio_stub))
    assert sum(calls.values()) == 4 and all(n == 1 for n in calls.values())
    contact_of = {phone: contact for _, phone, contact in people}
    assert calls[contact_of[failed.to_address]] == 1
