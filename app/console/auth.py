"""Signing in and out, and the on-duty switch in the top bar."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.console.access import SESSION_TOKEN_KEY, as_bool, safe_next
from app.console.blueprint import bp
from app.core.errors import DomainError
from app.core.extensions import limiter
from app.services import staff


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("console.queue_page"))
        return render_template("console/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")
    try:
        member = staff.authenticate(username=username, password=request.form.get("password", ""),
                                    client_ip=request.remote_addr)
    except DomainError as exc:
        return render_template("console/login.html", error=exc.message, username=username,
                               next=request.form.get("next", "")), exc.status
    _fresh_session()  # nothing planted before sign-in survives it
    session[SESSION_TOKEN_KEY] = staff.open_session(staff=member)
    login_user(member)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    staff.close_session(token=session.get(SESSION_TOKEN_KEY))
    logout_user()
    _fresh_session()
    return redirect(url_for("console.login"))


def _fresh_session() -> None:
    session.clear()
    # Flask-WTF caches this request's CSRF token in g; it belonged to the session just cleared.
    g.pop("csrf_token", None)


@bp.get("/")
def home():
    return redirect(url_for("console.queue_page"))


@bp.post("/duty")
def toggle_duty():
    member = staff.set_on_duty(actor=current_user, staff_id=current_user.id,
                               on_duty=as_bool(request.form.get("on_duty")))
    flash("已开始值班，将轮流分派工单给您" if member.on_duty else "已下班，不再分派新工单", "info")
    return redirect(request.referrer if (request.referrer or "").startswith(request.host_url) else url_for("console.queue_page"))
