"""Work-order timers (超期预警, breaches and the lead's one SMS through the real twilio client and the Twilio stub),
and the follow-up (回访) answered through the real SMS webhook: "未解决" reopens to the same department (issue 21)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from app.core import transports
from app.core.errors import DomainError
from app.core.extensions import db
from app.models import FollowUp, OutboundMessage, Ticket, TicketEvent, WorkOrder
from app.models.base import utcnow
from app.services import reports, workorders
from app.services.outbox import messages as outbox
from app.services.workorders import jobs, timers
from integrations.twilio import TwilioTransport
from tests.factories import ChannelIdentityFactory, ResidentFactory
from tests.helpers.workorders import LEAD_PHONE, build_world, open_ticket

AUTH_TOKEN = "twilio-test-auth-token"
RESIDENT_PHONE = "+8613912300021"


@pytest.fixture
def twilio(app, committed, twilio_stub, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", AUTH_TOKEN)  # the webhook's signature
    previous = transports.use(app).twilio
    transports.use(app, twilio=TwilioTransport(twilio_stub.account_sid, twilio_stub.auth_token,
                                               twilio_stub.from_number, twilio_stub.base_url, timeout=2))
    yield twilio_stub
    transports.use(app, twilio=previous)


@pytest.fixture
def w(twilio):
    return build_world()


def marks(ticket_id: int) -> list[str]:
    db.session.expire_all()
    return [e.data["step"] for e in db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "workorder")
        .order_by(TicketEvent.id))]


def test_a_warning_before_the_limit_then_a_breach_texts_the_lead_once(w, twilio):
    workorders.set_limit(actor=w.admin, category="facilities", priority=None, response_minutes=120,
                         handling_minutes=600)
    ticket = open_ticket(w.street, category="facilities")
    start = utcnow()
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id,
                                now=start)

    assert timers.sweep(now=start + timedelta(minutes=30)) == []  # 90 minutes left: no warning yet (60 before)
    assert timers.sweep(now=start + timedelta(minutes=70)) == [(order.id, "response", "warning")]
    assert timers.sweep(now=start + timedelta(minutes=71)) == []  # warned once
    assert twilio.sent_messages() == []  # a warning is on the timeline and in the console, not by SMS

    assert timers.sweep(now=start + timedelta(minutes=121)) == [(order.id, "response", "breach")]
    assert timers.sweep(now=start + timedelta(minutes=122)) == []
    # The job, run twice (a retry, or the sweep asking again): one SMS to the lead.
    assert jobs.text_lead(order.id) == "sms"
    assert jobs.text_lead(order.id) is None
    (sms,) = twilio.sent_messages()
    assert sms["to"] == LEAD_PHONE and f"工单#{ticket.id}" in sms["body"]
    assert marks(ticket.id) == ["dispatch", "warning", "breach", "lead_texted"]
    db.session.expire_all()
    assert db.session.get(WorkOrder, order.id).lead_text_route == "sms"


def test_a_breach_sms_that_reached_nobody_is_tried_again_and_sent_once(w, twilio):
    ticket = open_ticket(w.street)
    start = utcnow() - timedelta(days=10)
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id,
                                now=start)
    assert {(t, m) for _, t, m in timers.sweep()} == {("response", "breach"), ("handling", "breach")}
    twilio.opt_out(LEAD_PHONE)  # Twilio refuses (21610): no SMS reached the lead
    with pytest.raises(timers.LeadNotTexted):
        jobs.text_lead(order.id)
    db.session.expire_all()
    assert db.session.get(WorkOrder, order.id).lead_texted_at is None  # the claim was given back
    twilio.opt_out(LEAD_PHONE, opted_out=False)
    assert jobs.text_lead(order.id) == "sms"
    assert [m["to"] for m in twilio.sent_messages()] == [LEAD_PHONE]
    (row,) = [r for r in reports.department_figures(street_id=w.street.id) if r["name"] == "物业"]
    assert (row["dispatched"], row["overdue"], row["on_time"]) == (1, 1, 0)


# --- follow-up through the SMS webhook ----------------------------------------------------------------------------

def sms_in(client, sid: str, body: str):
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC1", "From": RESIDENT_PHONE, "To": "+15005550006",
              "Body": body, "NumSegments": "1"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature("http://linli.test/sms", params)
    response = client.post("/sms", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.get_data(as_text=True)


def resident_ticket(w):
    resident = ResidentFactory(phone=RESIDENT_PHONE, community__street=w.street, preferred_channel="sms")
    ChannelIdentityFactory(resident=resident, channel="sms", external_id=RESIDENT_PHONE)
    db.session.commit()
    conversation = outbox.conversation_for(resident_id=resident.id, channel="sms")
    return open_ticket(w.street, subject="小区门口路灯不亮", conversation_id=conversation.id, resident_id=resident.id)


def followups(ticket_id: int) -> list[FollowUp]:
    db.session.expire_all()
    return list(db.session.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket_id).order_by(FollowUp.id)))


def test_not_solved_reopens_to_the_same_department_and_solved_records_the_satisfaction(app, w, twilio):
    client = app.test_client()
    ticket = resident_ticket(w)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=ticket.id, staff_id=w.member.id, note="已更换灯泡")

    (asked,) = followups(ticket.id)
    question = db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "followup"))
    assert asked.status == "asked" and question.template == "ticket_followup" and "已解决" in question.body
    # No separate 1-5 rating question: the follow-up asks for it.
    assert db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "csat_request")) is None

    sms_in(client, "SMwo0001", "未解决")
    db.session.expire_all()
    order = workorders.work_order_of(ticket_id=ticket.id)
    assert db.session.get(Ticket, ticket.id).status == "open"
    assert (order.state, order.department_id, order.reopened) == ("dispatched", w.property.id, 1)
    assert [(f.status, f.solved) for f in followups(ticket.id)] == [("answered", False)]

    workorders.complete(ticket_id=ticket.id, staff_id=w.lead.id)
    sms_in(client, "SMwo0002", "已解决 5")
    assert [(f.status, f.solved, f.satisfaction) for f in followups(ticket.id)] == [
        ("answered", False, None), ("answered", True, 5)]
    db.session.expire_all()
    assert (db.session.get(Ticket, ticket.id).status, db.session.get(Ticket, ticket.id).csat_score) == ("resolved", 5)
    assert marks(ticket.id) == ["dispatch", "complete", "followup_asked", "followup_answer", "reopen", "complete",
                                "followup_asked", "followup_answer"]
    thanks = [r.body for r in db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind != "followup")
                                                 .order_by(OutboundMessage.id))]
    assert thanks[-1] == "感谢您的回访评价！如还有需要，随时留言。"
    # The department's figures, per turn: dispatched, then back after "未解决" (one 回访重办), both done on time; two
    # answers, one solved, satisfaction 5.
    figures = {row["name"]: row for row in reports.department_figures(street_id=w.street.id)}
    assert {k: figures["物业"][k] for k in ("dispatched", "on_time", "overdue", "reopened", "followups_answered",
                                           "solved", "satisfaction")} == {
        "dispatched": 2, "on_time": 2, "overdue": 0, "reopened": 1, "followups_answered": 2, "solved": 1,
        "satisfaction": 5.0}
    assert figures["城管"]["dispatched"] == 0 and figures["城管"]["satisfaction"] is None


def test_an_answer_for_an_unknown_or_closed_followup_is_refused_and_changes_nothing(app, w, twilio):
    ticket = resident_ticket(w)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=ticket.id, staff_id=w.member.id)
    (asked,) = followups(ticket.id)
    with pytest.raises(DomainError) as caught:
        workorders.answer_followup(followup_id=asked.id + 999, resident_id=asked.resident_id, solved=True)
    assert (caught.value.status, caught.value.code) == (404, "followup_not_found")
    with pytest.raises(DomainError) as caught:  # another resident's follow-up answers as an unknown one
        workorders.answer_followup(followup_id=asked.id, resident_id=asked.resident_id + 999, solved=True)
    assert (caught.value.status, caught.value.code) == (404, "followup_not_found")
    workorders.answer_followup(followup_id=asked.id, resident_id=asked.resident_id, solved=True, satisfaction=4)
    with pytest.raises(DomainError) as caught:
        workorders.answer_followup(followup_id=asked.id, resident_id=asked.resident_id, solved=False)
    db.session.rollback()
    assert (caught.value.status, caught.value.code) == (409, "followup_closed")
    (answered,) = followups(ticket.id)
    assert (answered.solved, answered.satisfaction) == (True, 4)
    assert db.session.get(Ticket, ticket.id).status == "resolved"
    # By chat, with no open question the same words are an ordinary message (the ticket's own rules apply).
    assert workorders.answer_followup_by_message(conversation_id=ticket.conversation_id, text="未解决") is None


def to_resident() -> list[tuple[str, str]]:
    """(kind, body) of every message the outbox holds for the resident, oldest first."""
    db.session.expire_all()
    return [(r.kind, r.body) for r in db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]


def texted_to_resident(twilio) -> list[str]:
    """Deliver what the outbox holds (the delivery job's one call), then what reached the resident's phone."""
    from app.services.delivery import sending

    db.session.expire_all()
    for row_id in db.session.scalars(select(OutboundMessage.id).where(OutboundMessage.status == "pending")
                                     .order_by(OutboundMessage.id)).all():
        sending.deliver(outbound_id=row_id)
    return [m["body"] for m in twilio.sent_messages() if m["to"] == RESIDENT_PHONE]


def console(app, username: str):
    from flask import g

    from tests.helpers.authorization import console_csrf, sign_in_console
    from tests.reliability.support import request_scoped_client

    client = request_scoped_client(app)
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    sign_in_console(client, username)
    return client, console_csrf(client)


def test_marking_a_dispatched_ticket_resolved_completes_its_work_order_and_asks_one_question(app, w, twilio):
    from app.services.workorders import followup

    ticket = resident_ticket(w)
    # Ids only: the rows leave the session with the console's requests.
    ticket_id, dispatcher_id, property_id = ticket.id, w.dispatcher.id, w.property.id
    workorders.dispatch(ticket_id=ticket_id, staff_id=dispatcher_id, department_id=property_id)
    client, token = console(app, w.dispatcher.username)
    response = client.post(f"/console/tickets/{ticket_id}/status", data={"csrf_token": token, "status": "resolved"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]

    db.session.expire_all()
    order = workorders.work_order_of(ticket_id=ticket_id)
    assert (db.session.get(Ticket, ticket_id).status, order.state, order.department_id) == (
        "resolved", "done", property_id)
    complete = db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                            TicketEvent.kind == "workorder")).all()[-2]
    assert (complete.data["step"], complete.staff_id) == ("complete", dispatcher_id)  # the resolver, on the record
    # One question reached the resident: the follow-up, not the old 1-5 rating as well.
    (question,) = to_resident()
    assert question[0] == "followup" and "已解决" in question[1]
    assert texted_to_resident(twilio) == [question[1]]
    assert followup.sweep() == (0, 0)  # asked already: the sweep asks nothing more
    assert timers.sweep() == []

    # A score alone (the old question's answer) is asked again, not taken as a new message reopening the ticket.
    sms_in(app.test_client(), "SMwo0100", "5")
    db.session.expire_all()
    assert (db.session.get(Ticket, ticket_id).status, workorders.work_order_of(ticket_id=ticket_id).state) == (
        "resolved", "done")
    assert [f.status for f in followups(ticket_id)] == ["asked"]
    assert to_resident()[-1][1] == followup.ASK_AGAIN
    # The answer goes to the follow-up (no rating question competes for it); the ticket stays resolved.
    sms_in(app.test_client(), "SMwo0101", "已解决 4")
    assert [(f.status, f.solved, f.satisfaction) for f in followups(ticket_id)] == [("answered", True, 4)]
    db.session.expire_all()
    assert (db.session.get(Ticket, ticket_id).status, db.session.get(Ticket, ticket_id).csat_score) == ("resolved", 4)
    thanks = "感谢您的回访评价！如还有需要，随时留言。"
    assert [body for _, body in to_resident()][1:] == [followup.ASK_AGAIN, thanks]
    assert texted_to_resident(twilio) == [question[1], followup.ASK_AGAIN, thanks]
    assert marks(ticket_id) == ["dispatch", "complete", "followup_asked", "followup_answer"]


def test_a_ticket_resolved_by_another_path_asks_no_rating_and_the_sweep_follows_it_up(app, w, twilio):
    from app.services.tickets import resolve_ticket
    from app.services.workorders import followup

    ticket = resident_ticket(w)
    start = utcnow() - timedelta(days=10)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id, now=start)
    resolve_ticket(ticket_id=ticket.id, staff_id=w.admin.id)  # the ticket domain's own resolve, not 办结
    assert to_resident() == []  # no rating question: the work order's follow-up will ask
    assert timers.sweep() == []  # no breach for a resolved ticket
    assert followup.sweep() == (1, 0)
    assert followup.sweep() == (0, 0)
    db.session.expire_all()
    assert workorders.work_order_of(ticket_id=ticket.id).state == "done"
    assert [f.status for f in followups(ticket.id)] == ["asked"]
    assert [kind for kind, _ in to_resident()] == ["followup"]


def test_a_resident_writing_again_sends_the_work_order_back_to_its_department(app, w, twilio):
    ticket = resident_ticket(w)
    start = utcnow() - timedelta(days=10)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id, now=start)
    assert timers.sweep(now=start + timedelta(days=4))  # both limits breached
    workorders.complete(ticket_id=ticket.id, staff_id=w.member.id, now=start + timedelta(days=5))

    before = utcnow()
    sms_in(app.test_client(), "SMwo0201", "路灯晚上还是不亮")  # not an answer to the follow-up: a new message
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == "open"
    order = workorders.work_order_of(ticket_id=ticket.id)
    assert (order.state, order.department_id, order.reopened, order.done_at) == (
        "dispatched", w.property.id, 1, None)
    # Its limits start again from the reopening, as after the follow-up's "未解决".
    assert order.response_due_at > before and order.handling_due_at > before
    assert not (order.response_breached or order.handling_breached or order.response_warned
                or order.handling_warned) and order.lead_texted_at is None and order.responded_at is None
    reopen = db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                          TicketEvent.kind == "workorder")).all()[-1]
    assert (reopen.data["step"], reopen.data["department_id"], reopen.staff_id) == ("reopen", w.property.id, None)
    assert "物业" in reopen.body
    # The question about the completion that no longer stands lapses: a later "已解决" is a message to staff.
    assert [f.status for f in followups(ticket.id)] == ["expired"]
    sms_in(app.test_client(), "SMwo0202", "已解决 5")
    assert [(f.status, f.solved) for f in followups(ticket.id)] == [("expired", None)]
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == "open"
    assert workorders.work_order_of(ticket_id=ticket.id).reopened == 1
    assert [e.body for e in db.session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "message_in").order_by(TicketEvent.id))] == [
        "路灯晚上还是不亮", "已解决 5"]


def test_staff_reopening_a_completed_ticket_sends_its_work_order_back(app, w, twilio):
    ticket = resident_ticket(w)
    ticket_id, admin_id, property_id = ticket.id, w.admin.id, w.property.id
    workorders.dispatch(ticket_id=ticket_id, staff_id=w.dispatcher.id, department_id=property_id)
    workorders.complete(ticket_id=ticket_id, staff_id=w.member.id)
    client, token = console(app, w.admin.username)
    response = client.post(f"/console/tickets/{ticket_id}/status", data={"csrf_token": token, "status": "open"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    db.session.expire_all()
    order = workorders.work_order_of(ticket_id=ticket_id)
    assert (db.session.get(Ticket, ticket_id).status, order.state, order.department_id, order.reopened) == (
        "open", "dispatched", property_id, 1)
    assert marks(ticket_id)[-1] == "reopen"
    assert db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                        TicketEvent.kind == "workorder")).all()[-1].staff_id == admin_id


def test_the_sweep_sends_back_a_work_order_whose_ticket_was_reopened_without_it(app, w, twilio):
    from app.services.tickets import set_status
    from app.services.workorders import followup

    ticket = resident_ticket(w)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=ticket.id, staff_id=w.member.id)
    set_status(ticket_id=ticket.id, staff_id=w.admin.id, status="open")  # the ticket domain alone (a lost step)
    assert workorders.work_order_of(ticket_id=ticket.id).state == "done"
    followup.sweep()
    db.session.expire_all()
    order = workorders.work_order_of(ticket_id=ticket.id)
    assert (order.state, order.department_id, order.reopened) == ("dispatched", w.property.id, 1)
    assert [f.status for f in followups(ticket.id)] == ["expired"]
    followup.sweep()
    assert workorders.work_order_of(ticket_id=ticket.id).reopened == 1  # once


def test_the_answer_parser():
    parse = workorders.parse_followup_answer
    assert parse("已解决 5") == (True, 5) and parse("未解决") == (False, None) and parse("没解决，2分") == (False, 2)
    assert parse("已解决５") == (True, 5) and parse("解决了") == (True, None)
    assert parse("5") is None and parse("路灯又坏了") is None and parse("已解决 6") is None


def test_duplicate_reports_link_to_the_first_and_hear_the_outcome(app, w, twilio, storage):
    from app.services.tickets import report

    reporters = []
    for n in range(3):
        resident = ResidentFactory(phone=f"+86139123000{30 + n}", community__street=w.street,
                                   preferred_channel="sms")
        ChannelIdentityFactory(resident=resident, channel="sms", external_id=resident.phone)
        reporters.append(resident)
    far = ResidentFactory(community__street=w.street)
    db.session.commit()
    first, second = (report(resident_id=r.id, category="facilities", text="路灯不亮", pole_number="GY0123-045")
                     for r in reporters[:2])
    third = report(resident_id=reporters[2].id, category="facilities", text="路灯坏了", latitude=31.2304,
                   longitude=121.4737)
    near = report(resident_id=far.id, category="facilities", text="这里路灯也坏", latitude=31.23042,
                  longitude=121.47371)
    other_kind = report(resident_id=far.id, category="noise", text="噪音", pole_number="GY0123-045")
    # The same place and category, but four days apart (the window is 72 hours): two problems.
    report(resident_id=far.id, category="greenery", text="树倒了", pole_number="GY0999-001",
           now=utcnow() - timedelta(hours=96))
    later = report(resident_id=reporters[0].id, category="greenery", text="树又倒了", pole_number="GY0999-001")

    links = workorders.link_new_reports()
    assert links == [(second.ticket_id, first.ticket_id), (near.ticket_id, third.ticket_id)]
    assert workorders.link_new_reports() == []  # once
    assert workorders.parent_of(ticket_id=other_kind.ticket_id) is None
    assert workorders.parent_of(ticket_id=later.ticket_id) is None

    workorders.dispatch(ticket_id=first.ticket_id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=first.ticket_id, staff_id=w.member.id)
    db.session.expire_all()
    assert db.session.get(Ticket, second.ticket_id).status == "resolved"
    told = db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "notice")).all()
    assert [r.ticket_id for r in told] == [second.ticket_id] and f"#{first.ticket_id}" in told[0].body
    assert workorders.tell_outcome(parent_ticket_id=first.ticket_id) == 0  # once


def test_the_app_answers_the_followup_of_a_request_once(app, w, twilio, storage):
    from app.services.tickets import report
    from tests.helpers.authorization import resident_headers

    resident = ResidentFactory(phone=RESIDENT_PHONE, community__street=w.street, preferred_channel="sms")
    ChannelIdentityFactory(resident=resident, channel="sms", external_id=RESIDENT_PHONE)
    db.session.commit()
    filed = report(resident_id=resident.id, category="facilities", text="路灯不亮", pole_number="GY0123-045")
    client, headers = app.test_client(), resident_headers(resident.id)
    url = f"/api/v1/requests/{filed.id}/followup"
    answer = client.post(url, json={"solved": True, "satisfaction": 4}, headers=headers)
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "followup_not_found")  # not asked yet

    workorders.dispatch(ticket_id=filed.ticket_id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=filed.ticket_id, staff_id=w.member.id)
    answer = client.post(url, json={"solved": False, "satisfaction": 2}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    assert {k: answer.get_json()[k] for k in ("status", "solved", "satisfaction")} == {
        "status": "answered", "solved": False, "satisfaction": 2}
    db.session.expire_all()
    assert db.session.get(Ticket, filed.ticket_id).status == "open"  # reopened to the same department
    again = client.post(url, json={"solved": True}, headers=headers)
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "followup_closed")
    other = ResidentFactory(community__street=w.street)
    db.session.commit()
    stranger = client.post(url, json={"solved": True}, headers=resident_headers(other.id))
    assert stranger.status_code == 404
    assert client.post(url, json={"solved": True, "satisfaction": 9}, headers=headers).status_code == 422
    assert [(f.status, f.solved) for f in followups(filed.ticket_id)] == [("answered", False)]


# --- breaches: who is told, what the timeline says, what the console shows ----------------------------------------

TEAM_LEAD_PHONE = "+8613700000009"


def bodies(ticket_id: int, step: str) -> list[str]:
    db.session.expire_all()
    return [e.body for e in db.session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "workorder").order_by(TicketEvent.id))
        if e.data["step"] == step]


def drain_queue(app, name: str) -> None:
    """Run every job queued on `name` in this process, as a worker would."""
    from app.core.worker import build_worker

    build_worker(app, (name,)).work(burst=True)


def test_the_periodic_sweep_itself_gets_the_lead_texted(app, w, twilio):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id,
                        now=utcnow() - timedelta(days=10))
    assert jobs.sweep_timers() == 2  # the job the ticker runs every minute: both limits breached
    assert twilio.sent_messages() == []  # the SMS is its own job, on the outbound queue
    drain_queue(app, "outbound")
    (sms,) = twilio.sent_messages()
    assert sms["to"] == LEAD_PHONE and f"工单#{ticket.id}" in sms["body"]
    assert jobs.sweep_timers() == 0
    drain_queue(app, "outbound")
    assert len(twilio.sent_messages()) == 1  # texted once
    assert marks(ticket.id) == ["dispatch", "breach", "breach", "lead_texted"]


def test_a_breach_in_a_department_without_a_lead_texts_the_streets_team_leads(app, w, twilio):
    w.admin.phone = TEAM_LEAD_PHONE
    db.session.commit()
    civil = workorders.create_department(actor=w.admin, name="民政")  # no lead
    ticket = open_ticket(w.street)
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=civil.id,
                                now=utcnow() - timedelta(days=10))
    timers.sweep()
    # The breach says what happened, not what is about to: nobody had been texted yet.
    assert all("短信" not in body for body in bodies(ticket.id, "breach"))
    assert jobs.text_lead(order.id) == "sms"
    assert [m["to"] for m in twilio.sent_messages()] == [TEAM_LEAD_PHONE]
    (texted,) = bodies(ticket.id, "lead_texted")
    assert "组长" in texted


def test_a_breach_nobody_can_be_texted_about_is_recorded_and_not_asked_again(app, w, twilio, monkeypatch):
    civil = workorders.create_department(actor=w.admin, name="民政")  # no lead, and no team lead has a phone
    ticket = open_ticket(w.street)
    order = workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=civil.id,
                                now=utcnow() - timedelta(days=10))
    timers.sweep()
    assert jobs.text_lead(order.id) is None
    assert twilio.sent_messages() == []
    (untold,) = bodies(ticket.id, "lead_untexted")
    assert "无人" in untold or "没有" in untold
    asked = []
    monkeypatch.setattr(timers.tasks, "later", lambda *a, **k: asked.append(k))
    timers.sweep()
    assert asked == []  # not queued again every minute, forever
    assert jobs.text_lead(order.id) is None and len(bodies(ticket.id, "lead_untexted")) == 1


def test_team_leads_see_the_streets_breached_and_warned_work_orders(app, w, twilio):
    breached = open_ticket(w.street, subject="超时的路灯")
    warned = open_ticket(w.street, subject="快到期的井盖")
    calm = open_ticket(w.street, subject="刚派的树枝")
    elsewhere = open_ticket(w.other, subject="别的街道超时")
    now = utcnow()
    workorders.dispatch(ticket_id=breached.id, staff_id=w.dispatcher.id, department_id=w.property.id,
                        now=now - timedelta(days=10))
    workorders.dispatch(ticket_id=warned.id, staff_id=w.dispatcher.id, department_id=w.urban.id,
                        now=now - timedelta(minutes=200))  # 40 minutes left of 240: a warning
    workorders.dispatch(ticket_id=calm.id, staff_id=w.dispatcher.id, department_id=w.urban.id, now=now)
    workorders.dispatch(ticket_id=elsewhere.id, staff_id=w.other_admin.id, department_id=w.foreign.id,
                        now=now - timedelta(days=10))
    timers.sweep()
    ids = (breached.id, warned.id, calm.id)
    names = {key: getattr(w, key).username for key in ("admin", "city", "member")}  # rows leave the session

    client, _ = console(app, names["admin"])  # a team lead of no department
    page = client.get("/console/workorders").get_data(as_text=True)
    assert 'id="breached-orders"' in page and "超时的路灯" in page and "别的街道超时" not in page
    assert "已超时（1）" in page
    ticket_page = client.get(f"/console/tickets/{ids[0]}").get_data(as_text=True)
    assert 'id="wo-breached"' in ticket_page and "已超时" in ticket_page

    client, _ = console(app, names["city"])  # 城管: the warned and the calm one
    page = client.get("/console/workorders").get_data(as_text=True)
    assert 'id="breached-orders"' not in page  # the street's list is the team leads'
    row = page.split("快到期的井盖")[1].split("</tr>")[0]
    assert "超期预警" in row and "已超时" not in row
    assert "超期预警" not in page.split("刚派的树枝")[1].split("</tr>")[0]
    assert "超期预警" in client.get(f"/console/tickets/{ids[1]}").get_data(as_text=True)
    client, _ = console(app, names["member"])  # 物业: the breached one, tagged
    row = client.get("/console/workorders").get_data(as_text=True).split("超时的路灯")[1].split("</tr>")[0]
    assert "已超时" in row


# --- what the resident is told, and what the timeline says of it --------------------------------------------------

def test_a_duplicate_reporter_nobody_could_reach_is_not_recorded_as_told(app, w, twilio, storage):
    from app.services.tickets import report

    reached = ResidentFactory(phone=RESIDENT_PHONE, community__street=w.street, preferred_channel="sms")
    ChannelIdentityFactory(resident=reached, channel="sms", external_id=RESIDENT_PHONE)
    unreachable = ResidentFactory(community__street=w.street, phone=None)
    db.session.commit()
    first = report(resident_id=reached.id, category="facilities", text="路灯不亮", pole_number="GY1-1")
    second = report(resident_id=unreachable.id, category="facilities", text="路灯不亮", pole_number="GY1-1")
    assert workorders.link_new_reports() == [(second.ticket_id, first.ticket_id)]
    workorders.dispatch(ticket_id=first.ticket_id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=first.ticket_id, staff_id=w.member.id)
    (outcome,) = bodies(second.ticket_id, "duplicate_outcome")
    assert "已告知" not in outcome and "无法" in outcome
    db.session.expire_all()
    assert db.session.get(Ticket, second.ticket_id).status == "resolved"


def test_a_not_solved_answer_that_cannot_reopen_tells_the_resident_so(app, w, twilio):
    from app.services.workorders import followup

    ticket = resident_ticket(w)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id)
    workorders.complete(ticket_id=ticket.id, staff_id=w.member.id)
    newer = open_ticket(w.street, subject="另一件事", conversation_id=ticket.conversation_id,
                        resident_id=ticket.resident_id)  # the conversation's one open ticket: no reopening
    reply = workorders.answer_followup_by_message(conversation_id=ticket.conversation_id, text="未解决")
    assert reply != followup.THANKS_REOPENED and "重新交给" not in reply and f"#{newer.id}" in reply
    db.session.expire_all()
    assert (db.session.get(Ticket, ticket.id).status, workorders.work_order_of(ticket_id=ticket.id).state) == (
        "resolved", "done")
    assert marks(ticket.id)[-1] == "reopen_refused"


# --- per-department figures: each department's turn keeps its own record ------------------------------------------

def figures(w, **period) -> dict:
    return {r["name"]: r for r in reports.department_figures(street_id=w.street.id, **period)}


def test_figures_keep_a_breach_after_transfer_and_reopening_and_count_followup_reopens(app, w, twilio):
    ticket = resident_ticket(w)
    start = utcnow() - timedelta(days=10)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id, now=start)
    timers.sweep(now=start + timedelta(days=4))  # 物业 breaches both limits
    workorders.transfer(ticket_id=ticket.id, staff_id=w.member.id, department_id=w.urban.id, reason="归城管")
    workorders.complete(ticket_id=ticket.id, staff_id=w.city.id)  # 城管 in time
    row = figures(w)
    assert {k: row["物业"][k] for k in ("dispatched", "on_time", "overdue", "transferred")} == {
        "dispatched": 1, "on_time": 0, "overdue": 1, "transferred": 1}
    assert {k: row["城管"][k] for k in ("dispatched", "on_time", "overdue")} == {
        "dispatched": 1, "on_time": 1, "overdue": 0}

    # Staff reopening is not a follow-up's: 回访重办 stays 0; the resident's "未解决" counts once, for 城管.
    workorders.set_ticket_status(ticket_id=ticket.id, staff_id=w.admin.id, status="open")
    assert figures(w)["城管"]["reopened"] == 0
    workorders.complete(ticket_id=ticket.id, staff_id=w.city.id)
    sms_in(app.test_client(), "SMwo0301", "未解决 2")
    row = figures(w)
    assert (row["城管"]["reopened"], row["城管"]["followups_answered"], row["城管"]["solved"],
            row["城管"]["satisfaction"]) == (1, 1, 0, 2.0)
    assert (row["物业"]["overdue"], row["物业"]["followups_answered"]) == (1, 0)  # 物业's breach is not lost


def test_the_reports_page_shows_department_figures_for_its_period(app, w, twilio):
    ticket = open_ticket(w.street)
    workorders.dispatch(ticket_id=ticket.id, staff_id=w.dispatcher.id, department_id=w.property.id,
                        now=utcnow() - timedelta(days=10))
    timers.sweep()
    client, _ = console(app, w.admin.username)
    page = client.get("/console/reports").get_data(as_text=True)  # the JSON below draws its table
    assert 'id="report-departments"' in page
    today = utcnow().date()
    answer = client.get(f"/console/api/reports/departments?start={today - timedelta(days=20)}&end={today}")
    rows = {r["name"]: r for r in answer.get_json()["departments"]}
    assert (rows["物业"]["dispatched"], rows["物业"]["overdue"]) == (1, 1)
    answer = client.get(f"/console/api/reports/departments?start={today - timedelta(days=5)}&end={today}")
    assert {r["name"]: r["dispatched"] for r in answer.get_json()["departments"]} == {"物业": 0, "城管": 0}
    csv = client.get(f"/console/reports/departments.csv?start={today - timedelta(days=20)}&end={today}")
    assert csv.status_code == 200 and "物业" in csv.get_data(as_text=True)
