"""In a real browser (Debian's Chromium via Playwright): the team lead opens the reports page and every
chart is drawn from its JSON endpoint, under the console's CSP; a screenshot is kept for review."""
from __future__ import annotations

import pytest

from app.core.extensions import db
from tests.conftest import make_test_app, truncate_all
from tests.e2e.conftest import ARTIFACTS, served
from tests.helpers.reports import build

# A canvas counts as drawn when it has a size and some pixels that are not transparent.
CANVAS_DRAWN = """(box) => {
  const canvas = box.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
  return painted;
}"""


@pytest.fixture
def live_app(app):
    """The app on a real port with the hand-worked street committed (and removed afterwards)."""
    live = make_test_app()
    truncate_all(app)
    with live.app_context():
        build()
        db.session.commit()
        db.session.remove()
    with served(live):
        yield live
    truncate_all(app)


@pytest.fixture
def page(chromium):
    return chromium.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN").new_page()


def test_the_team_lead_sees_every_report_drawn_as_charts(live_app, page):
    base = live_app.base_url
    from playwright.sync_api import expect
    problems = []
    # The browser's own favicon request is not the page's (the app serves no favicon).
    page.on("console", lambda m: problems.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", "lead_a")
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/queue*")
    page.goto(f"{base}/console/reports?start=2024-05-01&end=2024-05-03")

    sections = page.locator("section.report")
    expect(sections).to_have_count(7)  # volume ... and the departments' work orders (部门办理)
    for i in range(7):
        expect(sections.nth(i)).to_have_attribute("data-loaded", "1", timeout=15000)
    charts = page.locator("[data-chart]")
    assert charts.count() >= 12
    for i in range(charts.count()):
        box = charts.nth(i)
        name = box.get_attribute("data-chart")
        assert box.bounding_box()["height"] >= 200, name
        assert box.evaluate(CANVAS_DRAWN) > 1000, f"chart {name} has no drawing"

    # Figures and resident text reach the page as text.
    expect(page.locator("#report-outcome [data-role=kpis]")).to_contain_text("50.0%")
    expect(page.locator("#report-bot [data-table=unanswered]")).to_contain_text("社保卡怎么补办")
    expect(page.locator("#report-speed [data-table=breaches]")).to_contain_text("陈晓")
    assert not problems, problems  # no script errors and no CSP refusals

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)
