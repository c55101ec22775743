"""The reports section over HTTP: admins of a street only, their street's data only, JSON per report,
and CSV downloads Excel opens as UTF-8."""
from __future__ import annotations

import csv
import io
import re

import pytest

RANGE = "start=2024-05-01&end=2024-05-03"
NAMES = ["volume", "speed", "outcome", "bot", "help", "appointments", "departments"]


def login(client, username, password="correct horse"):
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/console/reports", "/console/reports/volume.csv"])
def test_pages_without_a_session_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login")


def test_json_without_a_session_answers_401(client):
    response = client.get("/console/api/reports/volume")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "login_required"


@pytest.mark.parametrize("path", ["/console/reports", "/console/api/reports/speed", "/console/reports/speed.csv"])
def test_staff_who_are_not_admins_get_403(client, world, path):
    login(client, world.staff.username)
    response = client.get(f"{path}?{RANGE}")
    assert response.status_code == 403
    if "/api/" in path:
        assert response.get_json()["error"]["code"] == "forbidden"
    else:
        assert "组长" in response.get_data(as_text=True)


def test_the_page_links_every_report_with_the_filters_and_loads_only_its_own_script(client, world):
    login(client, world.admin.username)
    response = client.get(f"/console/reports?{RANGE}&community={world.a1.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for name in NAMES:
        assert f'data-url="/console/api/reports/{name}?start=2024-05-01&amp;end=2024-05-03&amp;community={world.a1.id}"' in html
        assert f"/console/reports/{name}.csv?" in html
    assert "幸福社区" in html and "别处社区" not in html  # only the admin's own communities to choose from
    assert "<script>" not in html and "vendor/echarts" in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", NAMES)
def test_each_report_answers_json(client, world, name):
    login(client, world.admin.username)
    response = client.get(f"/console/api/reports/{name}?{RANGE}")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["report"], body["start"], body["end"]) == (name, "2024-05-01", "2024-05-03")


def test_another_streets_admin_sees_only_their_own_figures(client, world):
    from tests.factories import StaffFactory

    StaffFactory(street=world.street_b, role="admin", username="lead_b")
    login(client, "lead_b")
    volume = client.get(f"/console/api/reports/volume?{RANGE}").get_json()
    # Street B: one conversation-day, one ticket, one alert in the range; street A's are invisible.
    assert volume["totals"] == {"conversations": 1, "tickets": 1, "help_alerts": 1}
    speed = client.get(f"/console/api/reports/speed?{RANGE}").get_json()
    assert (speed["tickets"], speed["breached"]) == (1, 1)
    assert client.get(f"/console/api/reports/appointments?{RANGE}").get_json()["totals"]["bookings"] == 1


def test_a_community_of_another_street_is_not_found(client, world):
    login(client, world.admin.username)
    response = client.get(f"/console/api/reports/volume?{RANGE}&community={world.b1.id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "community_not_found"


@pytest.mark.parametrize("query", ["start=2024-13-01", "start=2024-05-03&end=2024-05-01", "community=abc",
                                   "start=2023-01-01&end=2024-05-01"])
def test_bad_filters_are_refused_with_a_reason(client, world, query):
    login(client, world.admin.username)
    response = client.get(f"/console/api/reports/volume?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] in ("invalid_filter", "invalid_range")


def test_an_unknown_report_is_404(client, world):
    login(client, world.admin.username)
    assert client.get("/console/api/reports/salaries").status_code == 404


def test_csv_download_is_utf8_with_bom_and_the_chinese_round_trips(client, world):
    login(client, world.admin.username)
    response = client.get(f"/console/reports/bot.csv?{RANGE}&community={world.a1.id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="linli-bot-2024-05-01_2024-05-03.csv"'
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["机器人", "2024-05-01 至 2024-05-03，幸福社区"]
    questions = [row for row in rows if row and row[0].startswith(("社保卡", "停车位"))]
    # A1 only (c3's question is A2's): the two ways of asking about the social card are one row.
    assert sorted((row[1], row[2].count("社保卡")) for row in questions) == [("1", 0), ("2", 2)]


@pytest.mark.parametrize("name", NAMES)
def test_every_report_downloads_as_csv(client, world, name):
    login(client, world.admin.username)
    response = client.get(f"/console/reports/{name}.csv?{RANGE}")
    assert response.status_code == 200 and response.get_data().startswith(b"\xef\xbb\xbf")
    assert len(list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))) > 3
