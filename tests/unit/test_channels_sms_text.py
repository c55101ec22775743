"""SMS segmentation: sentence boundaries, one UCS-2 segment per part for Chinese, at most five parts."""
from __future__ import annotations

from app.services.delivery.sms_text import GSM_PART, MAX_PARTS, POINTER, UCS2_PART, is_gsm, segment, shorten, units


def test_short_chinese_text_is_one_part():
    assert segment("您好，预约成功。") == ["您好，预约成功。"]


def test_long_chinese_text_is_cut_at_sentence_ends_into_67_character_parts():
    text = "请带好身份证。" * 5 + "社区服务中心地址是幸福路一号，工作时间为周一至周五上午九点到下午五点。" * 2
    parts = segment(text)
    assert "".join(parts) == text.replace(" ", "")
    assert all(units(p, gsm=False) <= UCS2_PART for p in parts)
    assert all(p.endswith("。") for p in parts)


def test_a_sentence_longer_than_a_part_is_cut_at_commas_then_by_force():
    sentence = "，".join(["第一项材料是身份证原件及复印件"] * 8) + "。"
    parts = segment(sentence)
    assert all(len(p) <= UCS2_PART for p in parts) and "".join(parts) == sentence
    assert segment("长" * 150) == ["长" * 67, "长" * 67, "长" * 16]


def test_more_than_five_parts_are_shortened_with_a_pointer_to_the_official_account():
    parts = segment("这是一句比较长的说明文字，用来测试短信的分段是否正确处理超长内容的情况。" * 12)
    assert len(parts) == MAX_PARTS and parts[-1] == POINTER
    assert len(shorten("很长。" * 200)) <= MAX_PARTS * UCS2_PART


def test_plain_ascii_uses_the_gsm_part_size_and_an_emoji_makes_it_ucs2():
    english = "Your appointment is confirmed. " * 8
    assert is_gsm(english) and all(len(p) <= GSM_PART for p in segment(english))
    assert len(segment(english)) == 2
    assert not is_gsm("ok 👍") and units("👍", gsm=False) == 2


def test_empty_text_has_no_parts():
    assert segment("  ") == []
