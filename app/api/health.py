"""GET /healthz: the database, Redis and the bot, each reported on its own. GET /livez: the process answers.

Two probes because they answer different questions: a supervisor restarting the web process when /healthz
says the database is down would restart every instance and fix nothing."""
from __future__ import annotations

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, List, String

from app.services import health

bp = APIBlueprint("health", __name__, tag="Health")


class LiveOut(Schema):
    status = String(required=True, metadata={"description": "always ok: the process serves requests"})


class HealthOut(Schema):
    status = String(required=True, metadata={"description": "ok, or degraded when a dependency is down"})
    checks = Dict(keys=String(), values=String(), required=True)
    down = List(String(), required=True)


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(summary="Health of the database, Redis and the bot",
        responses={200: {"description": "all up", "content": {"application/json": {"schema": HealthOut}}},
                   503: {"description": "one is down (named in `down`)",
                         "content": {"application/json": {"schema": HealthOut}}}})
def healthz():
    checks = health.report()
    down = [name for name, state in checks.items() if state != "ok"]
    return {"status": "ok" if not down else "degraded", "checks": checks, "down": down}, (200 if not down else 503)


@bp.get("/livez")
@bp.output(LiveOut)
@bp.doc(summary="Liveness: the web process answers (no dependency is called)")
def livez():
    return {"status": "ok"}
