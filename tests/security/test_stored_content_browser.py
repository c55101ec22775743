"""Stored text never runs as script in the console, proven in a real browser (Debian's Chromium via Playwright).

The attack: a resident (or a member of staff, or a team lead) stores text that is HTML or a `javascript:` link, and
the console shows it to staff, who are signed in. If any page or script put it in as HTML, the attacker's script
would run with a staff session: read residents' data, reply in staff's name. The payloads below go in by the real
paths (the WeChat webhook, the resident simulator, `/api/v1`, the console's own forms), the pages are opened signed
in, and every test asserts both halves: no script ran (a marker on `window`, a dialog, a script-src violation of
the CSP) and nothing was injected (no inline script, no `on*` attribute, no `javascript:` link), AND the payload is
on the page, as text.

Each page is checked twice: once as deployed (the console's CSP forbids inline script), and once with the CSP
bypassed, so escaping alone is proven and the CSP stays a second line, not the only one. The pages' live parts are
included: the queue's and the timeline's polling and the help board's refresh put server-rendered HTML in with
innerHTML; the simulator and the reports build their DOM from JSON (textContent); the reports' ECharts tooltips are
HTML that ECharts builds.
"""
from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.core import transports
from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import (
    ChannelIdentity,
    Community,
    Conversation,
    FaqArticle,
    HelpAlert,
    Message,
    Resident,
    ResidentRequest,
    Staff,
    Ticket,
)
from app.models.base import utcnow
from app.seed import seed_demo
from app.services.reports import intents
from app.services.tickets import sla
from integrations.rasa import BotUnavailable, ScriptedBot
from integrations.twilio import RecordingTwilioTransport
from integrations.wechat import RecordingWeChatSender
from tests.conftest import make_test_app, truncate_all
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, served
from tests.helpers.wechat import event_xml, post_plain, text_xml

STAFF = ("staff", "linli-staff")  # the seeded demo logins (app/seed.py)
ADMIN = ("admin", "linli-admin")
WANG, ZHANG = "o_demo_wang", "o_demo_zhang"  # seeded WeChat residents; 张桂英 (ZHANG) has a help chain and a phone
ZHANG_PHONE = "+8613800000001"
HANDOFF = "【转人工】"  # the scripted bot fails on texts starting with this, so a person takes over (a ticket)


def payload(tag: str) -> str:
    """Text that runs `window.__xss = tag` wherever it is put in as HTML: in an element, in an attribute value
    (the leading quotes close it), or as a link a template might make of it."""
    return (f"{tag}\"'><script>window.__xss='{tag}'</script><img src=x onerror=\"window.__xss='{tag}';alert(1)\">"
            f"<a href=\"javascript:window.__xss='{tag}'\">点我{tag}</a> javascript:window.__xss='{tag}'")


def short(tag: str) -> str:
    """The same attack for fields of 50 characters or fewer (names, FAQ titles)."""
    return f"{tag}\"'><img src=x onerror=__xss='{tag}'>"


CATEGORY = "<img src=x onerror=__xss=1>"  # a ticket's category: free text of at most 30 characters


def _bot_answer(sender: str, text: str) -> str:
    if text.startswith(HANDOFF):
        raise BotUnavailable("the scripted bot fails on this text")
    return f"收到：{text}"


class _Bot(ScriptedBot):
    """Echoes what it is told, fails on HANDOFF texts, and its NLU understands nothing: every question it
    answered counts as unanswered in the reports."""

    def __init__(self):
        super().__init__(_bot_answer)

    def parse(self, text: str, timeout: float = 0) -> str:
        return "nlu_fallback"


# --- the world: every payload stored through its real path -----------------------------------------------------

def _console_client(live, username: str, password: str):
    client = live.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def _post_form(client, path: str, **data):
    page = client.get("/console/queue").get_data(as_text=True)
    data["csrf_token"] = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post(path, data=data)
    assert response.status_code == 302, f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    return response


def _wechat(live, openid: str, text: str):
    """A resident's message through the signed WeChat webhook, as WeChat's servers post it."""
    response = post_plain(live.test_client(), text_xml(openid, text, uuid.uuid4().int % 10**18))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def _new_resident(live) -> str:
    """Another WeChat resident of the demo street (each new ticket needs a conversation without one)."""
    openid = "o_sec_" + uuid.uuid4().hex[:10]
    with live.app_context():
        community = db.session.scalar(select(Community).order_by(Community.id))
        resident = Resident(community=community, name="赵测试", preferred_channel="wechat")
        db.session.add_all([resident, ChannelIdentity(resident=resident, channel="wechat", external_id=openid)])
        db.session.commit()
        db.session.remove()
    return openid


def _ticket_of(live, openid: str) -> int:
    with live.app_context():
        ticket_id = db.session.scalar(
            select(Ticket.id).join(Conversation, Conversation.id == Ticket.conversation_id)
            .where(Conversation.address == openid).order_by(Ticket.id.desc()))
        db.session.remove()
    assert ticket_id is not None, f"no ticket for {openid}"
    return ticket_id


def _resident_api(live, phone: str):
    """A resident signed in to /api/v1 by SMS code (the code read from the recording Twilio transport)."""
    client = live.test_client()
    assert client.post("/api/v1/auth/sms-code", json={"phone": phone}).status_code == 202
    with live.app_context():
        code = re.search(r"(\d{6})", transports.get().twilio.sms_to(phone)[-1]).group(1)
    tokens = client.post("/api/v1/auth/sign-in", json={"phone": phone, "code": code}).get_json()

    def call(method: str, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {tokens['access_token']}", "Idempotency-Key": uuid.uuid4().hex}
        response = client.open(path, method=method, headers=headers, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.get_data(as_text=True)[:300]}"
        return response.get_json()

    return call, tokens["resident_id"]


@pytest.fixture(scope="module")
def world(app):
    """The demo street on a real port, with every text below stored by residents, staff and the team lead."""
    live = make_test_app(SIMULATOR_ENABLED=True)
    truncate_all(app)
    # Module-scoped, so set up before tests/conftest.py empties the test Redis for the first test: empty it here.
    live.extensions["linli_redis"].redis.flushdb()
    with live.app_context():
        seed_demo()
        db.session.add_all([FaqArticle(topic="sec_reports", title="办证时间", answer="工作日", uses=90),
                            FaqArticle(topic="sec_page", title="开门时间", answer="8:00", uses=0)])
        db.session.commit()
        db.session.remove()
    transports.use(live, bot=_Bot(), twilio=RecordingTwilioTransport(),
                   wechat=RecordingWeChatSender())
    w = SimpleNamespace(live=live, texts={})
    t = w.texts

    # A resident asks the bot what it does not understand: the bot echoes it (a passive reply, then the
    # transcript) and the question becomes one of the reports' unanswered questions.
    t["unanswered"] = payload("Q1")
    _wechat(live, WANG, t["unanswered"])
    with live.app_context():
        # What the classify_pending job does for each queued message (the job itself yields to queued replies).
        for queued in get_redis().lrange(intents.PENDING_KEY, 0, -1):
            intents.record_intent(message_id=int(queued))
        assert db.session.scalar(select(Message.intent).where(Message.text == t["unanswered"])) == "nlu_fallback"
        db.session.remove()
    # Then the bot fails: the message opens a ticket whose subject is the resident's words.
    t["resident"] = HANDOFF + payload("R1")
    _wechat(live, WANG, t["resident"])
    w.wang_ticket = _ticket_of(live, WANG)

    staff, admin = _console_client(live, *STAFF), _console_client(live, *ADMIN)
    base = f"/console/tickets/{w.wang_ticket}"
    _post_form(staff, f"{base}/claim")
    t["reply"] = payload("S1")
    _post_form(staff, f"{base}/reply", body=t["reply"])
    t["note"] = payload("N1")
    _post_form(staff, f"{base}/note", body=t["note"])
    _post_form(staff, f"{base}/category", category=CATEGORY)
    with live.app_context():
        admin_id = db.session.scalar(select(Staff.id).where(Staff.username == ADMIN[0]))
        db.session.remove()
    t["reason"] = short("A1")
    _post_form(staff, f"{base}/assign", assignee_id=str(admin_id), reason=t["reason"])

    # 张桂英 in the app: a new name and address, a contact's name, a 随手拍 request, and later its rating.
    call, zhang_id = _resident_api(live, ZHANG_PHONE)
    t["name"], t["address"] = short("M1"), payload("D1")
    call("PATCH", "/api/v1/me", json={"name": t["name"], "address": t["address"]})
    contacts = call("GET", f"/api/v1/help/residents/{zhang_id}/contacts")["contacts"]
    t["contact"] = short("C1")
    keep = ("id", "name", "phone", "wechat_openid", "relation", "channels", "ring_seconds", "wait_seconds")
    chain = [{k: c[k] for k in keep if c.get(k) is not None} for c in contacts]
    chain[0]["name"] = t["contact"]
    call("PUT", f"/api/v1/help/residents/{zhang_id}/contacts", json={"contacts": chain})
    t["request"] = payload("P1")
    filed = call("POST", "/api/v1/requests", json={"category": "noise", "text": t["request"],
                                                   "latitude": 31.23, "longitude": 121.47})["request"]
    w.request_ticket = _ticket_of_request(live, filed["id"])
    _post_form(staff, f"/console/tickets/{w.request_ticket}/status", status="resolved")
    t["rating"] = payload("K1")
    call("POST", f"/api/v1/requests/{filed['id']}/rating", json={"score": 1, "comment": t["rating"]})

    # 张桂英 presses one-key help in the WeChat menu; staff write a note on the alert.
    response = post_plain(live.test_client(), event_xml(ZHANG, "CLICK", "ONE_KEY_HELP"))
    assert response.status_code == 200
    with live.app_context():
        w.alert = db.session.scalar(select(HelpAlert.id).where(HelpAlert.resident_id == zhang_id))
        db.session.remove()
    t["help_note"] = payload("H1")
    _post_form(staff, f"/console/help/alerts/{w.alert}/note", body=t["help_note"])

    # The team lead edits an FAQ answer the bot reports count uses of.
    t["faq_title"], t["faq_answer"] = short("F1"), payload("F2")
    _post_form(admin, "/console/knowledge/sec_reports", title=t["faq_title"], answer=t["faq_answer"])

    # The SLA sweep, a month on: the open tickets are breached (the reports' and the team page's lists).
    with live.app_context():
        assert sla.check_breaches(now=utcnow() + timedelta(days=30))
        db.session.remove()

    w.staff_client, w.admin_client = staff, admin
    with served(live):
        yield w
    truncate_all(app)


def _ticket_of_request(live, request_id: int) -> int:
    with live.app_context():
        ticket_id = db.session.get(ResidentRequest, request_id).ticket_id
        db.session.remove()
    return ticket_id


# --- the browser ------------------------------------------------------------------------------------------------

# Run in every page before its own scripts: a script-src violation means markup tried to run script (the CSP
# stopped it); window.__xss is what the payloads set.
WATCH = """
window.__cspScriptViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  if (e.effectiveDirective.startsWith('script-src')) window.__cspScriptViolations.push(e.effectiveDirective + ' ' + e.sample);
});
"""

# What injected markup would have left in the page.
INJECTED = r"""() => {
  const found = [];
  if (window.__xss !== undefined) found.push('marker set: ' + window.__xss);
  (window.__cspScriptViolations || []).forEach((v) => found.push('CSP stopped a script: ' + v));
  document.querySelectorAll('script:not([src])').forEach((s) => found.push('inline script: ' + s.textContent.slice(0, 80)));
  document.querySelectorAll('a[href]').forEach((a) => {
    if (/^\s*javascript:/i.test(a.getAttribute('href'))) found.push('javascript: link ' + a.getAttribute('href'));
  });
  document.querySelectorAll('*').forEach((el) => {
    for (const attr of el.attributes) if (/^on/i.test(attr.name)) found.push('handler ' + el.tagName + ' ' + attr.name);
  });
  document.querySelectorAll('img[src="x"]').forEach((el) => found.push('element ' + el.outerHTML.slice(0, 80)));
  return found;
}"""


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (make browser installs it)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(params=["csp", "csp_bypassed"])
def open_as(request, browser, world):
    """A function signing a fresh browser in as `who` (STAFF or ADMIN); the CSP as served, or bypassed."""
    contexts = []

    def open_(who):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN",
                                      bypass_csp=request.param == "csp_bypassed")
        contexts.append(context)
        page = context.new_page()
        page.add_init_script(WATCH)
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        base = world.live.base_url
        page.goto(f"{base}/console/login")
        page.fill("input[name=username]", who[0])
        page.fill("input[name=password]", who[1])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/console/queue*")
        return page

    yield open_
    for context in contexts:
        context.close()


def assert_inert(page):
    """Nothing ran, nothing was injected."""
    found = page.evaluate(INJECTED) + [f"dialog: {message}" for message in page.dialogs]
    assert not found, f"{page.url}: " + "; ".join(found[:5])


def _one_more(page, selector: str, before: int):
    """Wait until the page's own scripts have added an element (escaped or not, so the checks run either way)."""
    page.wait_for_function("([selector, before]) => document.querySelectorAll(selector).length > before",
                           arg=[selector, before], timeout=15000)


# --- the pages --------------------------------------------------------------------------------------------------
# Each page is checked for what ran or was injected first, then for the texts, so a failure names the injection.

def test_the_ticket_page_and_its_polled_timeline_show_stored_text_as_text(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(STAFF)
    page.goto(f"{base}/console/tickets/{world.wang_ticket}")
    assert_inert(page)
    expect(page.locator(".ticket-head h1")).to_contain_text(t["resident"][:60])
    expect(page.locator(".ticket-head .tag").first).to_have_text(CATEGORY)
    timeline = page.locator(".timeline")
    for key in ("unanswered", "resident", "reply", "note", "reason"):
        expect(timeline).to_contain_text(t[key])
    expect(timeline).to_contain_text("收到：" + t["unanswered"])  # the bot's echo, in the transcript
    expect(timeline).to_contain_text(CATEGORY)  # the category change
    expect(page.locator("input[name=category]")).to_have_value(CATEGORY)

    # A new message while the page is open comes in by the timeline's polling (innerHTML of server HTML).
    entries = page.locator(".timeline > li.ev").count()
    live_text = payload("L" + uuid.uuid4().hex[:4])
    _wechat(world.live, WANG, live_text)
    _one_more(page, ".timeline > li.ev", entries)
    assert_inert(page)
    expect(timeline).to_contain_text(live_text)

    # The 随手拍 request: the resident's description and rating comment.
    page.goto(f"{base}/console/tickets/{world.request_ticket}")
    assert_inert(page)
    expect(page.locator(".ticket-head h1")).to_contain_text(t["request"][:60])
    expect(page.locator(".timeline")).to_contain_text(t["request"])
    expect(page.locator(".timeline")).to_contain_text(t["rating"])


def test_the_queue_and_its_polled_rows_show_subjects_and_categories_as_text(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(STAFF)
    page.goto(f"{base}/console/queue?view=open")
    assert_inert(page)
    rows = page.locator("tbody[data-poll-url]")
    expect(rows).to_contain_text(t["resident"][:60])
    expect(rows).to_contain_text(CATEGORY)
    expect(page.locator("select[name=category]")).to_contain_text(CATEGORY)

    # A new ticket while the page is open comes in by the queue's polling (innerHTML of server HTML).
    before = page.locator("tbody[data-poll-url] > tr").count()
    text = HANDOFF + payload("T" + uuid.uuid4().hex[:4])
    _wechat(world.live, _new_resident(world.live), text)
    _one_more(page, "tbody[data-poll-url] > tr", before)
    assert_inert(page)
    expect(rows).to_contain_text(text[:60])

    page.goto(f"{base}/console/queue?view=resolved")
    assert_inert(page)
    expect(page.locator("tbody[data-poll-url]")).to_contain_text(t["request"][:60])  # the resolved 随手拍


def test_the_knowledge_base_shows_an_edited_answer_as_text(world, open_as):
    from playwright.sync_api import expect

    base = world.live.base_url
    title, answer = short("E" + uuid.uuid4().hex[:3]), payload("E" + uuid.uuid4().hex[:3])
    admin = open_as(ADMIN)
    admin.goto(f"{base}/console/knowledge")
    form = admin.locator("#faq-sec_page")
    form.locator("input[name=title]").fill(title)
    form.locator("textarea[name=answer]").fill(answer)
    form.locator("button").click()
    admin.wait_for_load_state()
    assert_inert(admin)
    expect(admin.locator(".flash")).to_contain_text(title)  # the flash repeats the title
    expect(admin.locator("#faq-sec_page input[name=title]")).to_have_value(title)
    expect(admin.locator("#faq-sec_page textarea[name=answer]")).to_have_value(answer)
    expect(admin.locator("#faq-sec_reports input[name=title]")).to_have_value(world.texts["faq_title"])

    staff = open_as(STAFF)
    staff.goto(f"{base}/console/knowledge")
    assert_inert(staff)
    expect(staff.locator("#faq-sec_page h2")).to_have_text(title)
    expect(staff.locator("#faq-sec_page p")).to_have_text(answer)
    expect(staff.locator("#faq-sec_reports")).to_contain_text(world.texts["faq_answer"])


# Shows the tooltip of a chart's item as a visitor's hover would, through ECharts' own action; then waits for the
# tooltip's element (ECharts adds it beside the canvas).
SHOW_TIP = """([key, query]) => {
  const box = document.querySelector('[data-chart="' + key + '"]');
  echarts.getInstanceByDom(box).dispatchAction(Object.assign({type: 'showTip', seriesIndex: 0}, query));
}"""
TIP_SHOWN = """(key) => Array.from(document.querySelector('[data-chart="' + key + '"]').children)
  .some((el) => el.tagName === 'DIV' && el.querySelector('canvas') === null && el.innerHTML.trim() !== '')"""


def _tooltip(page, key: str, query: dict):
    page.evaluate(SHOW_TIP, [key, query])
    page.wait_for_function(TIP_SHOWN, arg=key, timeout=15000)


def test_the_reports_show_questions_subjects_and_chart_labels_as_text(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(ADMIN)
    page.goto(f"{base}/console/reports")
    for name in ("volume", "speed", "bot"):
        expect(page.locator(f"#report-{name}")).to_have_attribute("data-loaded", "1", timeout=15000)
    assert_inert(page)
    expect(page.locator('[data-table="unanswered"]')).to_contain_text(t["unanswered"])
    breaches = page.locator('[data-table="breaches"]')
    expect(breaches).to_contain_text(t["resident"][:60])
    expect(breaches).to_contain_text(CATEGORY)
    expect(breaches).to_contain_text(t["name"])  # the help alert's ticket is named after the resident

    # Chart tooltips are HTML that ECharts builds from the names: a ticket category, an FAQ title.
    _tooltip(page, "volume-categories", {"name": CATEGORY})
    assert_inert(page)
    expect(page.locator('[data-chart="volume-categories"]')).to_contain_text(CATEGORY)
    faq_titles = page.evaluate("""() => echarts.getInstanceByDom(document.querySelector('[data-chart="bot-faq"]'))
                                         .getOption().yAxis[0].data""")
    _tooltip(page, "bot-faq", {"dataIndex": faq_titles.index(t["faq_title"])})
    assert_inert(page)
    expect(page.locator('[data-chart="bot-faq"]')).to_contain_text(t["faq_title"])


def test_the_simulator_shows_residents_messages_and_replies_as_text(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(ADMIN)
    page.goto(f"{base}/console/simulator")
    assert_inert(page)
    expect(page.locator("#sim-openid")).to_contain_text(t["name"])  # 张桂英's new name, in the list of residents
    page.select_option("#sim-openid", WANG)
    _one_more(page, "#sim-chat .msg.kind-staff_reply", 0)
    assert_inert(page)
    expect(page.locator("#sim-chat .msg.kind-staff_reply")).to_contain_text(t["reply"])

    # The resident types it in the simulator; it goes through /wechat, and the bot echoes it back.
    echo = _new_resident(world.live)
    page.goto(f"{base}/console/simulator")
    page.select_option("#sim-openid", echo)
    text = payload("W" + uuid.uuid4().hex[:4])
    page.fill("#sim-text", text)
    page.click("#sim-form button")
    _one_more(page, "#sim-chat .msg.passive", 0)
    assert_inert(page)
    expect(page.locator("#sim-chat .msg.right")).to_contain_text(text)
    expect(page.locator("#sim-chat .msg.passive")).to_contain_text("收到：" + text)


def test_the_help_board_and_chains_show_names_and_notes_as_text(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(STAFF)
    page.goto(f"{base}/console/help")
    assert_inert(page)
    card = page.locator(f"[data-alert-id='{world.alert}']")
    expect(card.locator("h2")).to_contain_text(t["name"])
    expect(card.locator("h2")).to_contain_text(t["address"])
    expect(card).to_contain_text(t["help_note"])

    # The board refreshes its cards every few seconds (innerHTML of server HTML): a new note comes in that way.
    entries = card.locator(".timeline > li").count()
    note = payload("B" + uuid.uuid4().hex[:4])
    _post_form(world.staff_client, f"/console/help/alerts/{world.alert}/note", body=note)
    _one_more(page, f"[data-alert-id='{world.alert}'] .timeline > li", entries)
    assert_inert(page)
    expect(card).to_contain_text(note)

    page.goto(f"{base}/console/help/residents")
    assert_inert(page)
    expect(page.locator("main")).to_contain_text(t["name"])
    page.locator("a", has_text=t["name"]).first.click()
    page.wait_for_load_state()
    assert_inert(page)
    expect(page.locator("h1")).to_contain_text(t["name"])
    expect(page.locator("input[name=c0-name]")).to_have_value(t["contact"])
    assert "M1" in page.title()


def test_the_team_page_and_json_answers_opened_directly_are_inert(world, open_as):
    from playwright.sync_api import expect

    t, base = world.texts, world.live.base_url
    page = open_as(ADMIN)
    page.goto(f"{base}/console/team")
    assert_inert(page)
    expect(page.locator("main")).to_contain_text(t["resident"][:60])

    # The JSON the pages' scripts read, opened as a page: shown as text (application/json, nosniff).
    for path, tag in ((f"/console/simulator/feed?openid={WANG}", "S1"), ("/console/api/reports/bot", "Q1"),
                      ("/console/help/alerts.json", "H1")):
        response = page.goto(base + path)
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert_inert(page)
        expect(page.locator("body")).to_contain_text(f"<script>window.__xss='{tag}'</script>")
