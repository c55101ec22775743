"""The WeChat official account's server URL: GET for WeChat's URL check, POST for every message and event."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, current_app, request

from app.services import wechat_inbound

# Vendor webhooks speak XML and form posts, not JSON: kept out of the OpenAPI document.
bp = APIBlueprint("wechat", __name__, enable_openapi=False)


@bp.get("/wechat")
def verify_url():
    try:
        echo = wechat_inbound.verify_url(query=request.args.to_dict())
    except wechat_inbound.RejectedRequest as exc:
        return Response(exc.reason, status=exc.status, mimetype="text/plain")
    return Response(echo, mimetype="text/plain")


@bp.post("/wechat")
def receive():
    if (request.content_length or 0) > wechat_inbound.MAX_BODY:
        return Response("body too large", status=413, mimetype="text/plain")
    body = request.stream.read(wechat_inbound.MAX_BODY + 1)  # chunked bodies are capped too
    try:
        answer = wechat_inbound.answer(query=request.args.to_dict(), body=body,
                                       budget=float(current_app.config.get("WECHAT_REPLY_BUDGET", 4.0)))
    except wechat_inbound.RejectedRequest as exc:
        return Response(exc.reason, status=exc.status, mimetype="text/plain")
    mimetype = "text/plain" if answer == wechat_inbound.SUCCESS else "application/xml"
    return Response(answer, mimetype=mimetype)
