"""Domain exceptions raised by services, and the one handler that turns them into JSON errors."""
from __future__ import annotations

import logging

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the domain refused the request; `code` is stable for clients."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str = "", *, code: str | None = None, status: int | None = None,
                 details: dict | None = None):
        super().__init__(message or self.code)
        self.message = message or self.code.replace("_", " ")
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


# How every error answer looks, declared so /openapi.json documents the real body.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def register_errorhandlers(app: APIFlask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_body(exc.code, exc.message, exc.details), exc.status

    @app.error_processor
    def _apiflask(exc: HTTPError):
        # apiflask's validation errors (422) and abort() calls land here.
        code = "validation_error" if exc.status_code == 422 else _slug(exc.message, exc.status_code)
        return error_body(code, str(exc.message), exc.detail or None), exc.status_code, exc.headers

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        # Keep the exception's own headers (Allow on 405, Retry-After on 429), not its HTML content type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if _is_undecodable_json(exc):
            return error_body("invalid_json", "the request body is not valid JSON"), 400, headers
        return error_body(_slug(exc.name, exc.code), exc.description or exc.name), exc.code, headers

    @app.errorhandler(DataError)
    def _data(exc: DataError):
        # The database refused a value the schemas let through (an id beyond integer, a NUL in text).
        from app.core.extensions import db

        db.session.rollback()
        return error_body("invalid_value", "a value is out of range or contains characters that cannot be stored"), 422

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        # A constraint caught a race that no service turned into a domain answer (each known race has its own
        # code): the change was not made and trying again is safe, so 409 says that instead of a bare 500.
        from app.core.extensions import db

        db.session.rollback()
        log.warning("unhandled constraint violation: %s", exc.orig, exc_info=exc)
        return error_body("conflict", "the request conflicted with a concurrent change and was not made; try again"), 409

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_body("internal_error", "an unexpected error occurred"), 500


def _is_undecodable_json(exc: HTTPException) -> bool:
    # webargs (under @bp.input) aborts with a bare 400 and attaches the decoding error it caught.
    return exc.code == 400 and isinstance(getattr(exc, "exc", None), ValueError)


def _slug(text: str | None, status: int | None) -> str:
    if text:
        return "_".join(str(text).lower().split())
    return f"http_{status}"
