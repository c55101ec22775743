"""What apiflask leaves out of /openapi.json about request bodies: when one is required, and the 400 for bad JSON."""
from __future__ import annotations

from apiflask import APIFlask

from app.errors import ERROR_SCHEMA

HTTP_ERROR = "HTTPError"  # the component apiflask names after HTTP_ERROR_SCHEMA
INVALID_JSON = {
    "description": "The request body is not valid JSON (error code `invalid_json`)",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{HTTP_ERROR}"}}},
}


def register_spec_processor(app: APIFlask) -> None:
    @app.spec_processor
    def _document_request_bodies(spec: dict) -> dict:
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
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
