"""What apiflask leaves out of /openapi.json: when a request body is required, the 400 for bad JSON, and which
operations are deprecated."""
from __future__ import annotations

from apiflask import APIFlask

from app.core.errors import ERROR_SCHEMA

HTTP_ERROR = "HTTPError"  # the component apiflask names after HTTP_ERROR_SCHEMA
DEPRECATED_PREFIXES = ("/api/booking/",)  # app/api/booking.py: superseded by /api/v1 and /api/internal
INVALID_JSON = {
    "description": "The request body is not valid JSON (error code `invalid_json`)",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{HTTP_ERROR}"}}},
}


def register_spec_processor(app: APIFlask) -> None:
    @app.spec_processor
    def _document_request_bodies(spec: dict) -> dict:
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for path, operations in spec.get("paths", {}).items():
            for operation in operations.values():
                if isinstance(operation, dict) and path.startswith(DEPRECATED_PREFIXES):
                    operation["deprecated"] = True
                body = operation.get("requestBody") if isinstance(operation, dict) else None
                if not body:
                    continue
                if _refuses_a_missing_body(body, schemas):
                    body["required"] = True
                if "application/json" in body.get("content", {}):
                    operation["responses"].setdefault("400", INVALID_JSON)
                    schemas.setdefault(HTTP_ERROR, ERROR_SCHEMA)
        return spec


def _refuses_a_missing_body(body: dict, schemas: dict) -> bool:
    """A missing body is loaded as an empty object, so the app refuses it exactly when a field is required.

    A body whose fields are all optional (a PATCH) stays optional: without one the request is a valid no-op,
    and documenting it as required would make a client, or a fuzzer, expect a refusal the app does not give.
    """
    for media in body.get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = schemas.get(ref.rsplit("/", 1)[-1], {})
        if not schema.get("required"):
            return False
    return bool(body.get("content"))
