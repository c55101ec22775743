"""The harness's count of answers per inbound message (tests/cluster/traffic.py): a message answered twice counts as
duplicated whatever the words of the second answer. Pure counting: no root, no cluster."""
from __future__ import annotations

from tests.cluster.traffic import answers_per_message

WECHAT = {"oA": "7000000001"}
SMS = {"+8613900000001": "SMcluster1"}


def test_one_passive_reply_is_one_answer():
    assert answers_per_message(WECHAT, passive={"oA": 1}, pushed={}, parts={}) == {"7000000001": 1}


def test_a_turn_of_several_bot_messages_pushed_once_each_is_one_answer():
    pushed = {"oA": ["您好，我是邻里助手。", "1. 挂号\n2. 社保"]}
    assert answers_per_message(WECHAT, passive={}, pushed=pushed, parts={"7000000001": 2}) == {"7000000001": 1}


def test_a_differently_worded_second_answer_pushed_counts_as_a_duplicate():
    pushed = {"oA": ["您好，我是邻里助手。", "你好！有什么可以帮您？"]}  # two turns of one message: other words
    assert answers_per_message(WECHAT, passive={}, pushed=pushed, parts={"7000000001": 1}) == {"7000000001": 2}


def test_a_passive_reply_and_a_differently_worded_push_count_as_two_answers():
    pushed = {"oA": ["抱歉，智能助手暂时无法回答。"]}
    assert answers_per_message(WECHAT, passive={"oA": 1}, pushed=pushed, parts={}) == {"7000000001": 2}


def test_two_passive_replies_with_other_words_count_as_two_answers():
    assert answers_per_message(WECHAT, passive={"oA": 2}, pushed={}, parts={}) == {"7000000001": 2}


def test_an_sms_answer_in_segments_is_one_answer_and_a_different_second_sms_is_another():
    segments = ["第一段", "第二段"]
    assert answers_per_message(SMS, passive={}, pushed={"+8613900000001": segments},
                               parts={"SMcluster1": 2}) == {"SMcluster1": 1}
    assert answers_per_message(SMS, passive={}, pushed={"+8613900000001": [*segments, "另一个回答"]},
                               parts={"SMcluster1": 2}) == {"SMcluster1": 2}


def test_the_same_text_sent_twice_is_a_duplicate_even_when_the_turn_had_two_parts():
    pushed = {"oA": ["您好", "您好"]}
    assert answers_per_message(WECHAT, passive={}, pushed=pushed, parts={"7000000001": 2}) == {"7000000001": 2}


def test_a_message_with_no_answer_counts_zero():
    assert answers_per_message({**WECHAT, **SMS}, passive={}, pushed={"oOther": ["x"]}, parts={}) == {
        "7000000001": 0, "SMcluster1": 0}
