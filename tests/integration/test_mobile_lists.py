"""Lists of the mobile API: notifications from every channel newest first, and cursor pages that stay
stable while new rows arrive; the profile and notification preference."""
from __future__ import annotations

from app.core.extensions import db
from app.models import ChannelIdentity
from app.services.outbox import messages as outbox
from tests.helpers.mobile import bearer, error_code, idem, sign_in


def _notify(conversation_id: int, body: str) -> int:
    row = outbox.stage_message(conversation_id=conversation_id, body=body, kind="notice")
    db.session.commit()
    return row.id


def _all_pages(client, tokens, path, key, limit=2, arrive=None):
    seen, cursor, page_no = [], None, 0
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = client.get(path, headers=bearer(tokens), query_string=query).get_json()
        seen += [item["id"] for item in body[key]]
        page_no += 1
        if arrive and page_no == 1:
            arrive()
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_notifications_of_every_channel_newest_first_stable_while_new_ones_arrive(client, app, session):
    tokens = sign_in(client, app, "13800000031")
    resident_id = tokens["resident_id"]
    db.session.add(ChannelIdentity(resident_id=resident_id, channel="wechat", external_id="o-notify"))
    db.session.commit()
    sms = outbox.conversation_for(resident_id=resident_id, channel="sms").id
    wechat = outbox.conversation_for(resident_id=resident_id, channel="wechat").id
    before = [_notify(sms if n % 2 else wechat, f"通知{n}") for n in range(5)]
    late = []

    seen = _all_pages(client, tokens, "/api/v1/notifications", "notifications",
                      arrive=lambda: late.extend(_notify(sms, f"新通知{n}") for n in range(3)))
    assert seen == before[::-1]  # each earlier row exactly once, none of the new ones shifted the pages
    fresh = client.get("/api/v1/notifications", headers=bearer(tokens), query_string={"limit": 3}).get_json()
    assert [n["id"] for n in fresh["notifications"]] == late[::-1]
    assert {n["channel"] for n in client.get("/api/v1/notifications", headers=bearer(tokens),
                                             query_string={"limit": 20}).get_json()["notifications"]} \
        == {"sms", "wechat"}


def test_a_cursor_is_opaque_and_bound_to_its_list(client, app, session):
    tokens = sign_in(client, app, "13800000032")
    sms = outbox.conversation_for(resident_id=tokens["resident_id"], channel="sms").id
    for n in range(3):
        _notify(sms, f"通知{n}")
    cursor = client.get("/api/v1/notifications", headers=bearer(tokens),
                        query_string={"limit": 1}).get_json()["next_cursor"]
    assert error_code(client.get("/api/v1/requests", headers=bearer(tokens), query_string={"cursor": cursor}),
                      422) == "invalid_cursor"
    assert error_code(client.get("/api/v1/notifications", headers=bearer(tokens),
                                 query_string={"cursor": cursor[:-2] + "xx"}), 422) == "invalid_cursor"


def test_requests_list_pages_stay_stable_while_new_reports_arrive(client, app, session):
    from tests.factories import StreetFactory

    StreetFactory()
    tokens = sign_in(client, app, "13800000033")

    def report(n):
        response = client.post("/api/v1/requests", headers=idem(tokens), json={
            "category": "noise", "text": f"夜间施工{n}", "pole_number": f"GY000{n}"})
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["request"]["id"]

    before = [report(n) for n in range(5)]
    seen = _all_pages(client, tokens, "/api/v1/requests", "requests", arrive=lambda: [report(n) for n in (7, 8)])
    assert seen == before[::-1]


def test_the_profile_and_the_channel_notices_try_first(client, app, session):
    tokens = sign_in(client, app, "13800000034")
    me = client.patch("/api/v1/me", headers=idem(tokens), json={"name": "赵大爷", "address": "幸福路8号"}).get_json()
    assert (me["name"], me["address"], me["preferred_channel"]) == ("赵大爷", "幸福路8号", "sms")
    refused = client.patch("/api/v1/me", headers=idem(tokens), json={"preferred_channel": "wechat"})
    assert error_code(refused, 422) == "channel_not_linked"
    db.session.add(ChannelIdentity(resident_id=tokens["resident_id"], channel="wechat", external_id="o-pref"))
    db.session.commit()
    me = client.patch("/api/v1/me", headers=idem(tokens), json={"preferred_channel": "wechat"}).get_json()
    assert me["preferred_channel"] == "wechat"
    assert {"channel": "wechat", "linked": True, "address": None} in me["channels"]
