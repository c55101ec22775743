"""In a real browser (Debian's Chromium via Playwright): a resident writes in the simulator, staff claim
the ticket, reply, see it delivered to the WeChat stub, resolve it, and the rating question reaches the
resident, who answers it."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Conversation, OutboundMessage, Ticket
from app.seed import seed_demo
from app.services.delivery.jobs import deliver_outbound
from app.services.tickets import lifecycle as tickets
from tests.conftest import make_test_app, truncate_all
from tests.e2e.conftest import ARTIFACTS, served

OPENID = "o_demo_wang"  # a seeded WeChat resident (王小明)


@pytest.fixture
def live_app(app, wechat_stub):
    """The app on a real port, sending 客服 messages to the WeChat stub; the demo data seeded and removed after."""
    live = make_test_app(SIMULATOR_ENABLED=True, WECHAT_APP_ID=wechat_stub.app_id, WECHAT_SECRET=wechat_stub.secret,
                         WECHAT_API_BASE=wechat_stub.api_base, BOT_TIMEOUT=2.0)
    truncate_all(app)
    with live.app_context():
        seed_demo()
        db.session.remove()
    with served(live):
        yield live
    truncate_all(app)


def sign_in(page, base_url, username, password):
    page.goto(f"{base_url}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/console/queue*")


def deliver_pending(app) -> list[str]:
    """What a worker on the outbound queue would do: run the delivery job for every pending row."""
    with app.app_context():
        pending = db.session.scalars(select(OutboundMessage.id).where(OutboundMessage.status == "pending")
                                     .order_by(OutboundMessage.id)).all()
        db.session.remove()
    for outbound_id in pending:
        with app.app_context():
            deliver_outbound(outbound_id)
            db.session.remove()
    with app.app_context():
        bodies = db.session.scalars(select(OutboundMessage.body).where(OutboundMessage.id.in_(pending))
                                    .where(OutboundMessage.status == "sent")).all()
        db.session.remove()
    return list(bodies)


def sent_to_stub(stub, openid) -> list[str]:
    return [c["json"]["text"]["content"] for c in stub.calls_to("/cgi-bin/message/custom/send")
            if c["status"] == 200 and c["json"] and c["json"].get("touser") == openid
            and (c["response"] or {}).get("errcode") == 0]


def test_a_resident_is_answered_by_staff_and_asked_for_a_rating(live_app, chromium, wechat_stub):
    base = live_app.base_url
    from playwright.sync_api import expect
    resident = chromium.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN").new_page()
    staff = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()

    # The resident writes through the simulator (signed XML to /wechat); with no bot running, a person takes over.
    sign_in(resident, base, "admin", "linli-admin")
    resident.goto(f"{base}/console/simulator")
    resident.select_option("#sim-openid", OPENID)
    resident.fill("#sim-text", "楼下装修太吵了，晚上十点还在施工")
    resident.click("#sim-form button")
    expect(resident.locator("#sim-chat .msg.passive, #sim-chat .msg.outbox").first).to_be_visible(timeout=15000)
    with live_app.app_context():
        conversation = db.session.scalar(select(Conversation).where(Conversation.address == OPENID))
        ticket = tickets.open_ticket_for_conversation(conversation_id=conversation.id)
        assert ticket is not None, "the resident's message should have opened a ticket"
        ticket_id = ticket.id
        db.session.remove()

    # Staff see it appear in the unassigned queue without reloading, claim it and reply.
    sign_in(staff, base, "staff", "linli-staff")
    staff.goto(f"{base}/console/queue?view=unassigned")
    row = staff.locator(f"tr[data-ticket-id='{ticket_id}']")
    expect(row).to_be_visible(timeout=10000)
    row.locator("a.subject").click()
    staff.click("#claim")
    expect(staff.locator(".ticket-head")).to_contain_text("陈晓")
    staff.fill("#reply-body", "您好，我们已联系物业，今晚会去劝停施工。")
    staff.click("#reply-form button.primary")
    expect(staff.locator(".flash")).to_contain_text("回复已发送")

    # The outbox delivers it to WeChat's 客服 API (the stub); the console and the resident both see it.
    assert "您好，我们已联系物业，今晚会去劝停施工。" in deliver_pending(live_app)
    assert "您好，我们已联系物业，今晚会去劝停施工。" in sent_to_stub(wechat_stub, OPENID)
    expect(staff.locator(".timeline .ev-reply_out .delivery").last).to_have_text("已送达", timeout=10000)
    staff_reply = resident.locator("#sim-chat .msg.kind-staff_reply")
    expect(staff_reply).to_contain_text("今晚会去劝停施工", timeout=10000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    staff.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    # Resolving asks the resident for a rating once, by the same outbox.
    staff.click("#resolve")
    expect(staff.locator(".ticket-head .status")).to_have_text("已解决")
    assert tickets.CSAT_QUESTION in deliver_pending(live_app)
    assert tickets.CSAT_QUESTION in sent_to_stub(wechat_stub, OPENID)
    expect(resident.locator("#sim-chat .msg.kind-csat_request")).to_contain_text("请为本次服务打分", timeout=10000)

    # The resident's "5" is taken as the rating (not as a new message reopening the ticket).
    resident.fill("#sim-text", "5")
    resident.click("#sim-form button")
    expect(resident.locator("#sim-chat")).to_contain_text("感谢您的评价", timeout=10000)
    resident.screenshot(path=str(ARTIFACTS / "simulator.png"), full_page=True)
    with live_app.app_context():
        rated = db.session.get(Ticket, ticket_id)
        assert (rated.status, rated.csat_score) == ("resolved", 5)
        db.session.remove()
