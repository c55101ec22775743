"""The real wechatpy-based sender against the WeChat stub on loopback, with the token shared in Redis."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
import requests
from redis import Redis

from integrations.wechat import RecordingWeChatSender, WeChatApiError, WeChatClientSender, build_wechat_sender
from integrations.wechat_token import KEY_PREFIX
from tests.conftest import free_port
from tests.stubs.fixtures import STUB_REDIS_URL

CUSTOM_SEND = "/cgi-bin/message/custom/send"
TEMPLATE_SEND = "/cgi-bin/message/template/send"
OPENID = "oLnL1a2b3c4d5e6f7g8h9i0jkLmN"


def make_sender(stub, redis=None, *, timeout=2.0):
    # Each sender gets its own Redis connection, as a separate worker process would.
    return WeChatClientSender(stub.app_id, stub.secret, stub.api_base,
                              redis or Redis.from_url(STUB_REDIS_URL), timeout=timeout)


def token_key(stub) -> str:
    return f"{KEY_PREFIX}:{stub.app_id}_access_token"


def test_send_text_posts_a_customer_service_text_message_with_a_fresh_token(wechat_stub, stub_redis):
    make_sender(wechat_stub, stub_redis).send_text(OPENID, "您好，预约已确认。")

    token_call, send_call = wechat_stub.calls
    assert token_call["path"] == "/cgi-bin/token"
    assert token_call["params"] == {"grant_type": "client_credential", "appid": wechat_stub.app_id,
                                    "secret": wechat_stub.secret}
    assert send_call["path"] == CUSTOM_SEND
    assert send_call["json"] == {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，预约已确认。"}}
    assert send_call["params"]["access_token"] == token_call["response"]["access_token"]
    assert send_call["response"]["errcode"] == 0


def test_send_template_posts_template_id_data_and_url(wechat_stub, stub_redis):
    data = {"first": {"value": "预约提醒"}, "keyword1": {"value": "社区医院 内科"}}
    make_sender(wechat_stub, stub_redis).send_template(OPENID, "TPL-booking", data, url="https://linli.test/a/1")

    (call,) = wechat_stub.calls_to(TEMPLATE_SEND)
    assert call["json"] == {"touser": OPENID, "template_id": "TPL-booking", "url": "https://linli.test/a/1",
                            "data": data}
    assert call["response"]["errcode"] == 0


def test_token_is_cached_in_redis_and_reused_by_another_sender(wechat_stub, stub_redis):
    make_sender(wechat_stub).send_text(OPENID, "第一条")
    make_sender(wechat_stub).send_text(OPENID, "第二条")  # a second worker, its own Redis connection

    assert wechat_stub.tokens_issued == 1
    sends = wechat_stub.calls_to(CUSTOM_SEND)
    assert [c["response"]["errcode"] for c in sends] == [0, 0]
    assert sends[0]["params"]["access_token"] == sends[1]["params"]["access_token"]
    # Stored for less than WeChat's 7200 s so the refresh happens while the old token still works.
    assert 6000 < stub_redis.ttl(token_key(wechat_stub)) <= 6900


def _race(stub, workers: int) -> list[BaseException | None]:
    barrier = threading.Barrier(workers)
    outcomes: list[BaseException | None] = [None] * workers

    def work(i: int) -> None:
        sender = make_sender(stub, timeout=5.0)
        barrier.wait()
        try:
            sender.send_text(OPENID, f"worker {i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_expired_token_is_refreshed_by_exactly_one_of_several_concurrent_workers(wechat_stub, stub_redis):
    make_sender(wechat_stub).send_text(OPENID, "warm up")  # token 1, cached in Redis
    wechat_stub.expire_tokens()
    # A slow token endpoint keeps the refresh in flight while every other worker runs into 42001.
    wechat_stub.fail(path="/cgi-bin/token", sleep=0.5, times=10)

    outcomes = _race(wechat_stub, workers=6)

    assert outcomes == [None] * 6
    assert wechat_stub.tokens_issued == 2
    sends = wechat_stub.calls_to(CUSTOM_SEND)[1:]
    assert sorted(c["response"]["errcode"] for c in sends) == [0] * 6 + [42001] * 6
    new_token = wechat_stub.calls_to("/cgi-bin/token")[-1]["response"]["access_token"]
    assert {c["params"]["access_token"] for c in sends if c["response"]["errcode"] == 0} == {new_token}


def _send_from_another_process(api_base, app_id, secret, ready, go, results):
    sender = WeChatClientSender(app_id, secret, api_base, Redis.from_url(STUB_REDIS_URL), timeout=5.0)
    ready.put(True)
    go.wait(30)
    try:
        sender.send_text(OPENID, "from a worker process")
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_expired_token_is_refreshed_once_across_worker_processes(wechat_stub, stub_redis):
    make_sender(wechat_stub).send_text(OPENID, "warm up")
    wechat_stub.expire_tokens()
    wechat_stub.fail(path="/cgi-bin/token", sleep=0.5, times=10)
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_send_from_another_process,
                         args=(wechat_stub.api_base, wechat_stub.app_id, wechat_stub.secret, ready, go, results))
             for _ in range(3)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=30)  # every worker imported and built its sender: start them together
    go.set()
    outcomes = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)

    assert outcomes == ["ok"] * 3
    assert wechat_stub.tokens_issued == 2
    assert sorted(c["response"]["errcode"] for c in wechat_stub.calls_to(CUSTOM_SEND)[1:]) == [0] * 3 + [42001] * 3


def test_rejected_token_gets_one_refresh_and_one_retry(wechat_stub, stub_redis):
    sender = make_sender(wechat_stub, stub_redis)
    sender.send_text(OPENID, "warm up")
    wechat_stub.fail(path=CUSTOM_SEND, code=40001)

    sender.send_text(OPENID, "重试后送达")

    assert wechat_stub.tokens_issued == 2
    first, retry = wechat_stub.calls_to(CUSTOM_SEND)[1:]
    assert first["response"]["errcode"] == 40001
    assert retry["response"]["errcode"] == 0
    assert retry["json"]["text"]["content"] == "重试后送达"
    assert retry["params"]["access_token"] != first["params"]["access_token"]


def test_token_superseded_by_a_rival_fetch_is_recovered(wechat_stub, stub_redis):
    sender = make_sender(wechat_stub, stub_redis)
    sender.send_text(OPENID, "warm up")
    # Someone outside our lock (another tool on the same account) fetches a token: ours dies (grace 0).
    requests.get(f"{wechat_stub.api_base}token", timeout=5, params={
        "grant_type": "client_credential", "appid": wechat_stub.app_id, "secret": wechat_stub.secret})

    sender.send_text(OPENID, "still delivered")

    assert [c["response"]["errcode"] for c in wechat_stub.calls_to(CUSTOM_SEND)] == [0, 40001, 0]
    assert wechat_stub.tokens_issued == 3


def test_token_rejected_again_after_the_refresh_gives_up_with_a_retryable_error(wechat_stub, stub_redis):
    wechat_stub.fail(path=CUSTOM_SEND, code=42001, times=5)

    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "x")

    assert caught.value.errcode == 42001 and caught.value.retryable
    assert len(wechat_stub.calls_to(CUSTOM_SEND)) == 2  # one try, one retry, no more
    assert wechat_stub.tokens_issued == 2  # the first token, one refresh


def test_outside_the_48_hour_window_raises_outside_window_without_retrying(wechat_stub, stub_redis):
    wechat_stub.set_outside_window(OPENID)

    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "超过48小时")

    assert caught.value.errcode == 45015
    assert caught.value.outside_window and not caught.value.retryable
    assert len(wechat_stub.calls_to(CUSTOM_SEND)) == 1


def test_planned_45015_is_reported_as_outside_window(wechat_stub, stub_redis):
    wechat_stub.fail(path=CUSTOM_SEND, code=45015)

    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "x")

    assert caught.value.outside_window


def test_kefu_beyond_wechats_count_limit_raises_a_closed_kefu_without_retrying(wechat_stub, stub_redis):
    """45047: after a menu tap WeChat takes only a few 客服 messages; the rest must go another way."""
    sender = make_sender(wechat_stub, stub_redis)
    wechat_stub.limit_kefu(OPENID, 1)
    sender.send_text(OPENID, "第一条")

    with pytest.raises(WeChatApiError) as caught:
        sender.send_text(OPENID, "第二条")

    assert caught.value.errcode == 45047
    assert caught.value.kefu_closed and not caught.value.outside_window and not caught.value.retryable
    assert [c["response"]["errcode"] for c in wechat_stub.calls_to(CUSTOM_SEND)] == [0, 45047]
    requests.post(f"{wechat_stub.base_url}/_stub/kefu_limit", json={"openid": OPENID, "messages": None}, timeout=5)
    sender.send_text(OPENID, "限制解除")


def test_outside_the_window_is_a_closed_kefu_too(wechat_stub, stub_redis):
    wechat_stub.set_outside_window(OPENID)
    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "x")
    assert caught.value.kefu_closed


def test_slow_wechat_gives_a_retryable_error_within_the_client_timeout(wechat_stub, stub_redis):
    sender = make_sender(wechat_stub, stub_redis, timeout=0.5)
    sender.send_text(OPENID, "warm up")
    wechat_stub.fail(path=CUSTOM_SEND, sleep=5)

    started = time.monotonic()
    with pytest.raises(WeChatApiError) as caught:
        sender.send_text(OPENID, "x")

    assert time.monotonic() - started < 1.5
    assert caught.value.retryable and caught.value.errcode is None


def test_slow_token_endpoint_also_times_out(wechat_stub, stub_redis):
    wechat_stub.fail(path="/cgi-bin/token", sleep=5)

    started = time.monotonic()
    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis, timeout=0.5).send_text(OPENID, "x")

    assert time.monotonic() - started < 1.5
    assert caught.value.retryable


@pytest.mark.parametrize("failure, expected_status", [({"status": 502}, 502), ({"status": 503}, 503)])
def test_server_errors_are_retryable(wechat_stub, stub_redis, failure, expected_status):
    sender = make_sender(wechat_stub, stub_redis)
    sender.send_text(OPENID, "warm up")
    wechat_stub.fail(path=CUSTOM_SEND, **failure)

    with pytest.raises(WeChatApiError) as caught:
        sender.send_text(OPENID, "x")

    assert caught.value.http_status == expected_status and caught.value.retryable


def test_system_busy_is_retryable(wechat_stub, stub_redis):
    wechat_stub.fail(path=CUSTOM_SEND, code=-1)

    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "x")

    assert caught.value.errcode == -1 and caught.value.retryable


def test_wrong_secret_is_a_configuration_error_not_retried(wechat_stub, stub_redis):
    sender = WeChatClientSender(wechat_stub.app_id, "not-the-secret", wechat_stub.api_base, stub_redis)

    with pytest.raises(WeChatApiError) as caught:
        sender.send_text(OPENID, "x")

    assert caught.value.errcode == 40125 and not caught.value.retryable
    assert wechat_stub.calls_to(CUSTOM_SEND) == []
    assert len(wechat_stub.calls_to("/cgi-bin/token")) == 1


def test_unreachable_wechat_is_retryable(stub_redis):
    sender = WeChatClientSender("wx0", "secret", f"http://127.0.0.1:{free_port()}/cgi-bin/", stub_redis, timeout=1)

    with pytest.raises(WeChatApiError) as caught:
        sender.send_text(OPENID, "x")

    assert caught.value.retryable


def test_stub_rejects_a_malformed_customer_service_message(wechat_stub, stub_redis):
    with pytest.raises(WeChatApiError) as caught:
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "   ")

    assert caught.value.errcode == 44004


def test_stub_control_and_records_are_reachable_over_http(wechat_stub, stub_redis):
    base = wechat_stub.base_url
    requests.post(f"{base}/_stub/fail", json={"path": CUSTOM_SEND, "code": 45015}, timeout=5)
    with pytest.raises(WeChatApiError):
        make_sender(wechat_stub, stub_redis).send_text(OPENID, "x")

    calls = requests.get(f"{base}/_stub/calls", params={"path": CUSTOM_SEND}, timeout=5).json()["calls"]
    assert [c["response"]["errcode"] for c in calls] == [45015]
    assert requests.get(f"{base}/_stub/state", timeout=5).json()["tokens_issued"] == 1
    requests.post(f"{base}/_stub/reset", timeout=5)
    assert wechat_stub.calls == [] and wechat_stub.tokens_issued == 0


def test_oauth_code_exchange_answers_the_openid_once(wechat_stub):
    code = wechat_stub.issue_oauth_code(OPENID)
    params = {"appid": wechat_stub.app_id, "secret": wechat_stub.secret, "code": code,
              "grant_type": "authorization_code"}
    url = f"{wechat_stub.base_url}/sns/oauth2/access_token"

    assert requests.get(url, params=params, timeout=5).json()["openid"] == OPENID
    assert requests.get(url, params=params, timeout=5).json()["errcode"] == 40163


def test_build_wechat_sender_is_real_only_with_credentials(wechat_stub, stub_redis):
    assert isinstance(build_wechat_sender(app_id="", secret="", api_base=wechat_stub.api_base, redis=stub_redis),
                      RecordingWeChatSender)
    real = build_wechat_sender(app_id=wechat_stub.app_id, secret=wechat_stub.secret,
                               api_base=wechat_stub.api_base, redis=stub_redis)
    assert isinstance(real, WeChatClientSender)
    real.send_text(OPENID, "configured")
    assert len(wechat_stub.calls_to(CUSTOM_SEND)) == 1
