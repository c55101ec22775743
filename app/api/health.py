"""GET /healthz: the database, Redis and the bot, each reported on its own."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from app.services import health

bp = APIBlueprint("health", __name__, tag="Health")


@bp.get("/healthz")
@bp.doc(summary="Health of the database, Redis and the bot", responses={200: "all up", 503: "one is down"})
def healthz():
    checks = health.report(rasa_url=current_app.config["RASA_URL"])
    down = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "ok" if not down else "degraded", "checks": checks, "down": down}
    return body, (200 if not down else 503)
