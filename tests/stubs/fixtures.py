"""Pytest fixtures: the WeChat and Twilio stub servers on loopback, and a Redis database for tests.

Import the fixtures into a test module (`from tests.stubs.fixtures import wechat_stub  # noqa: F401`)
or list this module in `pytest_plugins`.
"""
from __future__ import annotations

import os

import pytest
from redis import Redis

from tests.stubs.aliyun_stub import AliyunStub
from tests.stubs.twilio_stub import TwilioStub
from tests.stubs.wechat_stub import WeChatStub

STUB_REDIS_URL = os.environ.get("STUB_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def wechat_stub():
    """A WeChat API stub; the previous token dies the moment a new one is issued (grace 0), so any
    redundant refresh shows up as failing requests."""
    stub = WeChatStub(token_grace=0).start()
    yield stub
    stub.stop()


@pytest.fixture
def twilio_stub():
    stub = TwilioStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def aliyun_stub():
    """Aliyun's voice and SMS APIs; tests set `report_urls` to the app's push URLs before pushing receipts."""
    stub = AliyunStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def stub_redis():
    """Redis db 15 (never the app's or the dev one), emptied before and after the test."""
    redis = Redis.from_url(STUB_REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    redis.flushdb()
    yield redis
    redis.flushdb()
    redis.close()
