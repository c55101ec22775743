"""GET /healthz: the database, Redis and the bot, each reported on its own. GET /livez: the process answers.

Two probes because they answer different questions: a supervisor restarting the web process when /healthz
says the database is down would restart every instance and fix nothing."""
from __future__ import annotations

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Integer, List, Nested, String

from app.services import care, health

bp = APIBlueprint("health", __name__, tag="Health")


class LiveOut(Schema):
    status = String(required=True, metadata={"description": "always ok: the process serves requests"})


class OverdueStep(Schema):
    alert_id = Integer()
    kind = String(metadata={"description": "step: an escalating alert's step; realert: an accepted, unresolved "
                                          "alert's re-alert"})
    round = Integer()
    step = Integer()
    due_at = String()
    overdue_seconds = Integer()


class HealthDetail(Schema):
    overdue_escalation_steps = List(Nested(OverdueStep), metadata={
        "description": "help alerts whose escalation step, or whose re-alert after an acceptance left open, is "
                       "overdue by more than 5 minutes (the watchdog)"})


class HealthOut(Schema):
    status = String(required=True, metadata={"description": "ok, or degraded when a dependency is down"})
    checks = Dict(keys=String(), values=String(), required=True)
    down = List(String(), required=True)
    detail = Nested(HealthDetail)


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(summary="Health of the database, Redis and the bot",
        responses={200: {"description": "all up", "content": {"application/json": {"schema": HealthOut}}},
                   503: {"description": "one is down (named in `down`)",
                         "content": {"application/json": {"schema": HealthOut}}}})
def healthz():
    checks = health.report()
    down = [name for name, state in checks.items() if state != "ok"]
    return ({"status": "ok" if not down else "degraded", "checks": checks, "down": down, "detail": _detail(down)},
            200 if not down else 503)


def _detail(down: list[str]) -> dict:
    # The watchdog reads the database: with the database down there is nothing to read (and it is reported above).
    if "database" in down:
        return {}
    try:
        overdue = care.overdue_steps()
    except Exception:  # noqa: BLE001  a probe answers; a failing read is not a reason to answer 500
        return {}
    return {"overdue_escalation_steps": [{k: v for k, v in s.items() if k != "resident"} for s in overdue]}


@bp.get("/livez")
@bp.output(LiveOut)
@bp.doc(summary="Liveness: the web process answers (no dependency is called)")
def livez():
    return {"status": "ok"}
