"""Help chains from the app: the resident and the family members they authorised edit the chain and see
the alerts; anyone else finds nothing there."""
from __future__ import annotations

from app.core.extensions import db
from app.models import HelpAlert
from app.models.base import utcnow
from tests.helpers.mobile import bearer, error_code, idem, sign_in

CHAIN = {"contacts": [
    {"name": "儿子", "phone": "+8613900000001", "relation": "family"},
    {"name": "邻居老李", "phone": "+8613900000002", "relation": "neighbour", "channels": ["sms"]},
]}


def test_a_resident_authorises_a_family_member_who_then_edits_the_chain(client, app, session):
    elder = sign_in(client, app, "13800000021")
    son = sign_in(client, app, "13900000001")
    stranger = sign_in(client, app, "13700000001")
    elder_id = elder["resident_id"]
    path = f"/api/v1/help/residents/{elder_id}/contacts"

    assert error_code(client.put(path, headers=idem(son), json=CHAIN), 404) == "not_found"
    granted = client.post("/api/v1/help/delegates", headers=idem(elder), json={"phone": "13900000001", "name": "儿子"})
    assert granted.status_code == 201 and granted.get_json()["delegate"]["phone"] == "+86139****0001"

    managed = client.get("/api/v1/help/residents", headers=bearer(son)).get_json()["residents"]
    assert [(r["id"], r["is_self"]) for r in managed] == [(son["resident_id"], True), (elder_id, False)]
    saved = client.put(path, headers=idem(son), json=CHAIN)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert [(c["position"], c["name"]) for c in saved.get_json()["contacts"]] == [(1, "儿子"), (2, "邻居老李")]
    assert [c["name"] for c in client.get(path, headers=bearer(elder)).get_json()["contacts"]] == ["儿子", "邻居老李"]

    for attempt in (client.get(path, headers=bearer(stranger)), client.put(path, headers=idem(stranger), json=CHAIN),
                    client.get(f"/api/v1/help/residents/{elder_id}/alerts", headers=bearer(stranger))):
        assert error_code(attempt, 404) == "not_found"

    delegate_id = granted.get_json()["delegate"]["id"]
    # Only the resident manages who is authorised; the delegate cannot withdraw or add anyone for them.
    assert error_code(client.delete(f"/api/v1/help/delegates/{delegate_id}", headers=idem(son)), 404) == "not_found"
    assert client.delete(f"/api/v1/help/delegates/{delegate_id}", headers=idem(elder)).status_code == 204
    assert error_code(client.get(path, headers=bearer(son)), 404) == "not_found"


def test_an_invalid_chain_is_refused_with_the_fields(client, app, session):
    elder = sign_in(client, app, "13800000022")
    response = client.put(f"/api/v1/help/residents/{elder['resident_id']}/contacts", headers=idem(elder),
                          json={"contacts": [{"name": "儿子", "relation": "family"}]})
    assert error_code(response, 422) == "invalid_contact"
    assert "phone" in response.get_json()["error"]["details"]


def test_alert_history_newest_first_for_the_resident_and_their_delegates(client, app, session):
    elder = sign_in(client, app, "13800000023")
    client.post("/api/v1/help/delegates", headers=idem(elder), json={"phone": "13900000003"})
    daughter = sign_in(client, app, "13900000003")
    now = utcnow()
    ids = []
    for n, status in enumerate(("resolved", "cancelled", "resolved")):
        alert = HelpAlert(resident_id=elder["resident_id"], source="device", status=status, created_at=now)
        db.session.add(alert)
        db.session.flush()
        ids.append(alert.id)
    db.session.commit()
    for viewer in (elder, daughter):
        body = client.get(f"/api/v1/help/residents/{elder['resident_id']}/alerts", headers=bearer(viewer),
                          query_string={"limit": 2}).get_json()
        rest = client.get(f"/api/v1/help/residents/{elder['resident_id']}/alerts", headers=bearer(viewer),
                          query_string={"limit": 2, "cursor": body["next_cursor"]}).get_json()
        assert [a["id"] for a in body["alerts"] + rest["alerts"]] == ids[::-1] and rest["next_cursor"] is None
        assert body["alerts"][0]["status_label"] == "已结束"


def test_the_own_phone_cannot_be_a_delegate(client, app, session):
    elder = sign_in(client, app, "13800000024")
    response = client.post("/api/v1/help/delegates", headers=idem(elder), json={"phone": "13800000024"})
    assert error_code(response, 422) == "own_phone"
