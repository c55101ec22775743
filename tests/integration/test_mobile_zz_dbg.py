import pytest
from tests.integration.test_mobile_support import bearer, idem, sign_in
from app.extensions import db
from app.models import HelpAlert
from app.models.base import utcnow
def test_dbg(client, app, session):
    app.config["PROPAGATE_EXCEPTIONS"] = True
    elder = sign_in(client, app, "13800000023")
    r = client.get(f"/api/v1/help/residents/{elder['resident_id']}/alerts", headers=bearer(elder), query_string={"limit": 2})
    print(r.get_json())
