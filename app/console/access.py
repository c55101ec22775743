"""Who may see what in the console: login required everywhere but the login page, admin-only pages,
and errors shown as pages (or JSON for the polling endpoints) instead of raw API errors."""
from __future__ import annotations

from functools import wraps
from zoneinfo import ZoneInfo

from flask import current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.console.blueprint import bp
from app.core.config import setting
from app.core.errors import DomainError, error_body
from app.core.extensions import login_manager
from app.models.base import utcnow
from app.services import staff

PUBLIC_ENDPOINTS = {"console.login"}
# Where the session cookie keeps the token of its server-side session (staff.open_session): without its row, a
# cookie names nobody, so logging out ends every copy of it.
SESSION_TOKEN_KEY = "_staff_session"

login_manager.login_view = "console.login"
# "basic" keeps a tablet logged in when it moves between networks; the cookie itself is HttpOnly,
# SameSite=Lax and Secure in production (see app/config.py).
login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_staff(staff_id: str):
    return staff.load_staff(staff_id, session_token=session.get(SESSION_TOKEN_KEY))


def wants_json() -> bool:
    return "/api/" in request.path or request.accept_mimetypes.best == "application/json" \
        or request.headers.get("X-Requested-With") == "fetch"


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return jsonify(error_body("login_required", "请先登录")), 401
    return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))


@bp.before_request
def _require_login():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def admin_required(view):
    """Team-lead pages: a staff member gets 403, not a redirect, so the refusal is explicit."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role != "admin":
            return _error_page(403, "此页面仅组长可用")
        return view(*args, **kwargs)

    return wrapper


@bp.after_request
def _no_store(response):
    # Residents' data stays out of shared caches; the CSP and the other security headers are app-wide
    # (app/core/security_headers.py).
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error_page(status: int, message: str):
    if wants_json():
        return jsonify(error_body({400: "bad_request", 403: "forbidden", 404: "not_found"}.get(status, "error"),
                                  message)), status
    return render_template("console/error.html", status=status, message=message), status


@bp.errorhandler(CSRFError)
def _csrf_failed(exc):
    return _error_page(400, "表单已过期或缺少安全令牌，请刷新页面后重试")


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    """A refused action on a form: back to the page with the reason shown; JSON for fetch callers."""
    if exc.status in (403, 404) or wants_json() or request.method == "GET":
        if wants_json():
            return jsonify(error_body(exc.code, exc.message, exc.details)), exc.status
        return _error_page(exc.status, exc.message)
    flash(exc.message, "error")
    return redirect(_safe_back())


@bp.errorhandler(404)
def _not_found(exc):
    return _error_page(404, "页面不存在")


def _safe_back() -> str:
    target = request.referrer or ""
    host = request.host_url.rstrip("/")
    if target.startswith(host + "/console"):
        return target
    return url_for("console.queue_page")


def safe_next(target: str | None) -> str:
    """Only console paths of this site: a login link cannot send staff elsewhere, nor put a line break or other
    control character into the Location header (the server refuses to send it: a 500)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target \
            and target.isprintable():
        return target
    return url_for("console.queue_page")


SHANGHAI = ZoneInfo("Asia/Shanghai")


@bp.app_template_filter("sh_time")
def sh_time(value, fmt: str = "%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    tz = ZoneInfo(setting("TIMEZONE"))
    return value.astimezone(tz).strftime(fmt)


@bp.app_template_filter("due_in")
def due_in(value) -> str:
    """"还剩 25 分钟" / "已超时 3 小时": what a queue row needs at a glance."""
    if value is None:
        return "—"
    seconds = (value - utcnow()).total_seconds()
    span = abs(seconds)
    if span < 3600:
        text = f"{int(span // 60)} 分钟"
    elif span < 86400:
        text = f"{int(span // 3600)} 小时 {int(span % 3600 // 60)} 分"
    else:
        text = f"{int(span // 86400)} 天 {int(span % 86400 // 3600)} 小时"
    return ("还剩 " if seconds >= 0 else "已超时 ") + text


@bp.app_template_global("is_overdue")
def is_overdue(value) -> bool:
    return value is not None and value < utcnow()


def as_bool(value) -> bool:
    return str(value).lower() in ("1", "true", "on", "yes")


@bp.app_template_global("console_has_route")
def console_has_route(prefix: str) -> bool:
    """Nav links to pages other modules add (help board, appointments) appear once those exist."""
    return any(rule.rule.startswith(prefix) for rule in current_app.url_map.iter_rules())


@bp.app_template_global("console_link")
def console_link(endpoint: str, fallback: str) -> str:
    """The URL of a page another module provides, or where it is expected to live."""
    return url_for(endpoint) if endpoint in current_app.view_functions else fallback


@bp.app_template_filter("category_label")
def category_label(value: str) -> str:
    from app.services.tickets import CATEGORY_LABELS

    return CATEGORY_LABELS.get(value, value)
