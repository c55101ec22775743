"""In a real browser (Debian's Chromium via Playwright): the team lead dispatches a resident's ticket to 物业, the
department's member answers and completes it, the follow-up (回访) reaches the resident through the WeChat stub,
the resident answers it in chat, and the console shows the result (issue 21)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.models import Conversation, Staff
from app.services import workorders
from app.services.tickets import lifecycle as tickets
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_console_e2e import OPENID, deliver_pending, live_app, sent_to_stub, sign_in  # noqa: F401

pytestmark = pytest.mark.usefixtures("live_app")


def test_dispatch_answer_as_the_department_and_see_the_followup_result(live_app, chromium, wechat_stub):  # noqa: F811
    base = live_app.base_url
    from playwright.sync_api import expect
    with live_app.app_context():
        admin = db.session.scalar(select(Staff).where(Staff.username == "admin"))
        member = db.session.scalar(select(Staff).where(Staff.username == "staff"))
        workorders.create_department(actor=admin, name="城管")
        department = workorders.create_department(actor=admin, name="物业")
        workorders.add_member(actor=admin, department_id=department.id, staff_id=member.id)
        db.session.remove()
    resident = chromium.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN").new_page()
    lead = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
    staff = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()

    # A resident writes (no bot running: a person takes over), which opens a ticket.
    sign_in(resident, base, "admin", "linli-admin")
    resident.goto(f"{base}/console/simulator")
    resident.select_option("#sim-openid", OPENID)
    resident.fill("#sim-text", "小区3号楼电梯坏了两天了")
    resident.click("#sim-form button")
    expect(resident.locator("#sim-chat .msg.passive, #sim-chat .msg.outbox").first).to_be_visible(timeout=15000)
    with live_app.app_context():
        conversation = db.session.scalar(select(Conversation).where(Conversation.address == OPENID))
        ticket_id = tickets.open_ticket_for_conversation(conversation_id=conversation.id).id
        db.session.remove()

    # The team lead dispatches it to 物业 from the ticket page.
    sign_in(lead, base, "admin", "linli-admin")
    lead.goto(f"{base}/console/tickets/{ticket_id}")
    lead.select_option("select[name=department_id]", label="物业")
    lead.click("#dispatch")
    expect(lead.locator("#wo-department")).to_have_text("物业")
    expect(lead.locator(".timeline")).to_contain_text("派单至“物业”")

    # The department's member finds it in the department queue, answers the resident and completes it.
    sign_in(staff, base, "staff", "linli-staff")
    staff.goto(f"{base}/console/workorders")
    staff.locator("#department-queue a", has_text="电梯坏了").click()
    staff.fill("textarea[name=body][aria-label=部门答复]", "维修师傅今天下午到场。")
    staff.click("#respond")
    expect(staff.locator(".flash")).to_contain_text("已答复居民")
    staff.fill("input[name=note][aria-label=办结说明]", "已更换电梯控制板")
    staff.click("#complete")
    expect(staff.locator("#wo-state")).to_have_text("已办结")
    expect(staff.locator("#wo-followup")).to_contain_text("等待居民回复")

    # The follow-up goes out by the outbox (客服 to the WeChat stub); the resident answers it in chat.
    delivered = deliver_pending(live_app)
    assert any(body.startswith("【回访】") for body in delivered), delivered
    assert any(text.startswith("【回访】") for text in sent_to_stub(wechat_stub, OPENID))
    expect(resident.locator("#sim-chat")).to_contain_text("【回访】", timeout=10000)
    resident.fill("#sim-text", "已解决 5")
    resident.click("#sim-form button")
    expect(resident.locator("#sim-chat")).to_contain_text("感谢您的回访评价", timeout=10000)

    # The console shows the result on the ticket, for the department and for the lead.
    staff.reload()
    expect(staff.locator("#wo-followup")).to_contain_text("已解决，满意度 5/5")
    # A page of its own: the lead's ticket page reloads itself when the ticket's status changes (console.js),
    # which would abort a navigation of that page started at the same moment.
    board = lead.context.new_page()
    board.goto(f"{base}/console/departments")
    expect(board.locator("#departments")).to_contain_text("物业")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    staff.screenshot(path=str(ARTIFACTS / "workorder.png"), full_page=True)
