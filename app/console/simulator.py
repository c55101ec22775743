"""The resident simulator: a phone-like chat that talks to the real WeChat webhook (when enabled)."""
from __future__ import annotations

from flask import abort, jsonify, render_template, request
from flask_login import current_user

from app.console import wechat_sim
from app.console.blueprint import bp
from app.core.config import setting


@bp.before_request
def _simulator_enabled():
    # Off unless configured: in production nobody may post as a resident.
    if request.endpoint and request.endpoint.startswith("console.simulator") \
            and not setting("SIMULATOR_ENABLED"):
        abort(404)


@bp.get("/simulator")
def simulator_page():
    return render_template("console/simulator.html", openids=wechat_sim.demo_openids(street_id=current_user.street_id))


@bp.post("/simulator/send")
def simulator_send():
    payload = request.get_json(silent=True) or request.form
    return jsonify(wechat_sim.send_as_resident(openid=payload.get("openid", ""), text=payload.get("text", ""),
                                               street_id=current_user.street_id))


@bp.get("/simulator/feed")
def simulator_feed():
    after = request.args.get("after", "0")
    return jsonify({"messages": wechat_sim.outbox_feed(openid=request.args.get("openid", ""),
                                                       street_id=current_user.street_id,
                                                       after=int(after) if after.isdecimal() else 0)})
