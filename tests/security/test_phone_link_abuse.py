"""Linking a phone from the WeChat chat ("绑定手机 <number>", then the code) goes through the same limits as the app.

The attack this closes: from a WeChat chat an attacker could text codes to a victim's phone as fast as they liked,
guess a 6-digit code ~16 times a minute per openid (and more with fresh openids), text numbers abroad, and one right
guess merged the victim's account (family, ID numbers) into the attacker's without a word. Now:
- sends: one code per phone per MOBILE_CODE_RESEND_SECONDS, MOBILE_CODES_PER_PHONE_HOUR per phone, and a budget per
  client (an address in the app, the openid in the chat);
- guesses: a code dies after 5 wrong tries, and MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR (10) guesses per phone per hour
  whoever makes them, so fresh openids buy nothing: at most 10 of 10^6 codes an hour, a 1 in 100,000 chance, and
  the phone's owner is texted every code;
- only mainland mobiles get codes;
- a phone that already has an account is merged only on an explicit "合并 <code>", and the phone is told by SMS.
"""
from __future__ import annotations

import re

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Patient, Resident
from app.services.residents import identities
from tests.factories import PatientFactory
from tests.helpers.wechat import post_plain, text_xml

VICTIM = "+8613912345678"
VICTIM_TYPED = "13912345678"


def say(web, openid: str, text: str, msg_id: int) -> str:
    return post_plain(web, text_xml(openid, text, msg_id)).get_data(as_text=True)


def codes_texted(twilio, phone: str = VICTIM) -> list[str]:
    return [re.search(r"\d{6}", body).group() for body in twilio.sms_to(phone) if "验证码" in body]


def wrong_code(right: str) -> str:
    return "000000" if right != "000000" else "111111"


def test_a_chat_cannot_text_a_phone_more_than_once_a_minute(web, rasa, street, recorders):
    _, twilio = recorders
    for n in range(8):
        say(web, "oAttacker0001", f"绑定手机 {VICTIM_TYPED}", 100 + n)
    for n in range(3):  # nor can other openids share the phone's budget
        say(web, f"oAttackerFresh{n}", f"绑定手机 {VICTIM_TYPED}", 200 + n)
    assert len(codes_texted(twilio)) == 1


def test_the_hourly_budget_of_codes_per_phone_holds_across_openids(web, rasa, street, recorders, app, monkeypatch):
    _, twilio = recorders
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    for n in range(8):
        say(web, f"oAttackerBudget{n}", f"绑定手机 {VICTIM_TYPED}", 300 + n)
    assert len(codes_texted(twilio)) == app.config["MOBILE_CODES_PER_PHONE_HOUR"] == 5


def test_guesses_against_one_phone_are_budgeted_whoever_makes_them(web, rasa, street, recorders, app, monkeypatch):
    """Three openids take turns: the phone's 10 guesses an hour are spent, then even the right code is refused."""
    _, twilio = recorders
    monkeypatch.setitem(app.config, "MOBILE_CODE_RESEND_SECONDS", 0)
    judged = 0
    msg = 400
    for attacker in ("oGuesserA", "oGuesserB", "oGuesserC"):
        say(web, attacker, f"绑定手机 {VICTIM_TYPED}", msg)
        msg += 1
        code = codes_texted(twilio)[-1]
        for _ in range(4):
            reply = say(web, attacker, wrong_code(code), msg)
            msg += 1
            judged += "验证码不正确" in reply
    assert judged == app.config["MOBILE_SIGN_IN_TRIES_PER_PHONE_HOUR"] == 10
    say(web, "oGuesserD", f"绑定手机 {VICTIM_TYPED}", msg)
    right = codes_texted(twilio)[-1]
    refused = say(web, "oGuesserD", right, msg + 1)
    assert "绑定成功" not in refused and "合并" not in refused
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Resident.id)).where(Resident.phone == VICTIM)) == 0


def test_a_number_abroad_gets_no_code(web, rasa, street, recorders):
    _, twilio = recorders
    reply = say(web, "oAbroad0001", "绑定手机 +447700900123", 500)
    assert "手机号" in reply
    assert twilio.sms_to("+447700900123") == []


def test_the_app_texts_no_sign_in_code_abroad_either(client, recorders):
    _, twilio = recorders
    refused = client.post("/api/v1/auth/sms-code", json={"phone": "+447700900123"})
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "bad_phone"
    assert twilio.sms_to("+447700900123") == []
    assert client.post("/api/v1/auth/sms-code", json={"phone": VICTIM_TYPED}).status_code == 202


def test_a_phone_with_an_account_is_merged_only_when_asked_and_its_owner_is_told(web, rasa, street, recorders):
    _, twilio = recorders
    victim = identities.resident_for(channel="sms", address=VICTIM)
    PatientFactory(resident=victim, name="王奶奶")
    db.session.commit()
    victim_id = victim.id

    say(web, "oNewWeChatUser", f"绑定手机 {VICTIM_TYPED}", 600)
    code = codes_texted(twilio)[-1]
    asked = say(web, "oNewWeChatUser", code, 601)
    assert "已有" in asked and "合并" in asked and "绑定成功" not in asked
    db.session.expire_all()
    assert db.session.get(Resident, victim_id) is not None  # nothing moved yet
    assert db.session.scalar(select(Patient.resident_id).where(Patient.name == "王奶奶")) == victim_id

    linked = say(web, "oNewWeChatUser", f"合并 {code}", 602)
    assert "绑定成功" in linked
    db.session.expire_all()
    assert db.session.get(Resident, victim_id) is None
    owner = db.session.scalar(select(Patient.resident_id).where(Patient.name == "王奶奶"))
    assert db.session.get(Resident, owner).phone == VICTIM
    notices = [body for body in twilio.sms_to(VICTIM) if "合并" in body]
    assert len(notices) == 1 and "如非本人操作" in notices[0]


def test_the_app_asks_for_the_merge_too(client, app, recorders):
    """/api/v1's confirm answers 409 phone_has_account until the resident sends merge: true."""
    from tests.helpers.mobile import bearer, sign_in

    _, twilio = recorders
    identities.resident_for(channel="sms", address=VICTIM)
    db.session.commit()
    tokens = sign_in(client, app, "+8613800000001")
    assert client.post("/api/v1/me/channels/phone", json={"phone": VICTIM_TYPED}, headers=bearer(tokens)).status_code == 202
    code = codes_texted(twilio)[-1]
    refused = client.post("/api/v1/me/channels/phone/confirm", json={"code": code}, headers=bearer(tokens))
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "phone_has_account"
    merged = client.post("/api/v1/me/channels/phone/confirm", json={"code": code, "merge": True}, headers=bearer(tokens))
    assert merged.status_code == 200, merged.get_data(as_text=True)
