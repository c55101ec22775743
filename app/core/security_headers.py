"""The browser-facing security headers of every response, set in this one place (issue 24).

One policy for every answer: the console's pages render text residents wrote, so no inline script, style or
handler runs there and nothing frames them (clickjacking a staff member's click); JSON, XML and files gain nothing
from a looser one. Only apiflask's Swagger UI (/docs, never served in production) loads its scripts from a CDN and
keeps just the framing rule. HSTS only on an answer that went out over TLS: behind nginx `request.is_secure` reads
X-Forwarded-Proto, believed only from the TRUSTED_PROXY_HOPS proxies (ProxyFix in create_app).
"""
from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
DOCS_POLICY = "frame-ancestors 'none'"
_DOCS_ENDPOINTS = frozenset({"openapi.docs", "openapi.swagger_ui_oauth_redirect"})
# A year, without includeSubDomains or preload: other hosts of the street office's domain may not serve TLS.
HSTS = "max-age=31536000"


def init_security_headers(app: Flask) -> None:
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy",
                       DOCS_POLICY if request.endpoint in _DOCS_ENDPOINTS else CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")  # for browsers that predate frame-ancestors
    headers["X-Content-Type-Options"] = "nosniff"
    # Same-origin: the console's "back" after a refused form reads the Referer of its own pages.
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response
