"""A web node killed (kill -9) after claiming a message in Redis and before storing it: the claim stays "running" and
nobody holds the message. WeChat's retry, reaching another node, must store and answer it, once (found by the
cluster harness, tests/cluster/: a WeChat message lost when web1 was killed under traffic)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.core.extensions import db
from app.core.redis_client import get_redis
from app.models import Message
from tests.helpers.wechat import plain_query, text_xml

OPENID = "oKilledFirstDelivery01"


def texts(direction: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.text).where(Message.direction == direction).order_by(Message.id)))


def claim_as_a_dead_node(app, msg_id: int) -> None:
    with app.app_context():
        get_redis().set(f"linli:inbound:wechat:{msg_id}", "running", ex=600)


def test_a_retry_answers_a_message_whose_first_delivery_died_before_storing_it(app, web, rasa, street):
    claim_as_a_dead_node(app, 93001)
    answer = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "我要挂号", 93001), content_type="text/xml")
    assert "收到：我要挂号" in answer.get_data(as_text=True)
    assert texts("in") == ["我要挂号"] and texts("out") == ["收到：我要挂号"]
    assert len(rasa.turns) == 1


def test_concurrent_retries_after_a_dead_first_delivery_make_one_turn(app, web, rasa, street):
    claim_as_a_dead_node(app, 93002)
    query = plain_query()

    def post(_):
        return app.test_client().post("/wechat?" + query, data=text_xml(OPENID, "低保", 93002),
                                      content_type="text/xml").get_data(as_text=True)

    with ThreadPoolExecutor(5) as pool:
        bodies = list(pool.map(post, range(5)))
    assert len(rasa.turns) == 1
    assert texts("in") == ["低保"] and texts("out") == ["收到：低保"]
    assert all("收到：低保" in body or body == "success" for body in bodies)


def test_a_retry_while_the_first_delivery_is_alive_and_stored_still_makes_no_second_turn(app, web, rasa, street):
    first = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "居住证", 93003), content_type="text/xml")
    assert "收到：居住证" in first.get_data(as_text=True)
    claim_as_a_dead_node(app, 93003)  # as if the first still ran: its row is there, so the retry stores nothing
    retry = web.post("/wechat?" + plain_query(), data=text_xml(OPENID, "居住证", 93003), content_type="text/xml")
    assert retry.get_data(as_text=True) == "success"
    assert texts("in") == ["居住证"] and len(rasa.turns) == 1
