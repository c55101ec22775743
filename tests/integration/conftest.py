"""Fixtures of the integration tests: the help app served on loopback by a real HTTP server, and the reports'
hand-worked street (a module that builds a `world` of its own overrides this one)."""
from __future__ import annotations

import pytest

from app.core.extensions import db
from tests.conftest import make_test_app, truncate_all
from tests.helpers.help_calls import aliyun_push_urls, aliyun_settings, twilio_settings
from tests.helpers.reports import build
from tests.stubs.server import ServerThread


@pytest.fixture
def served(app, twilio_stub):
    """(app, base_url): an app of its own whose PUBLIC_BASE_URL is the loopback server it is served by."""
    help_app = make_test_app(**twilio_settings(twilio_stub))
    server = ServerThread(help_app)
    help_app.config["PUBLIC_BASE_URL"] = server.base_url
    server.start()
    yield help_app, server.base_url
    server.stop()


@pytest.fixture
def world(session):
    """The hand-worked street of tests/helpers/reports.py, rolled back after the test."""
    return build()


@pytest.fixture
def sqlite_committed(sqlite_app):
    """Real commits on the SQLite app of the module (its `sqlite_app`), every table emptied afterwards."""
    with sqlite_app.app_context():
        yield db.session
        db.session.remove()
    truncate_all(sqlite_app)


@pytest.fixture
def aliyun_served(app, aliyun_stub):
    """An app on Aliyun's telephony (the real SDK against the stub), served over HTTP so the stub can push its
    receipts to it: (app, base URL)."""
    help_app = make_test_app(**aliyun_settings(aliyun_stub))
    server = ServerThread(help_app)
    help_app.config["PUBLIC_BASE_URL"] = server.base_url
    aliyun_stub.report_urls = aliyun_push_urls(server.base_url)
    server.start()
    yield help_app, server.base_url
    server.stop()
