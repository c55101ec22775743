"""What apiflask leaves out of /openapi.json: when a request body is required, the 400 for bad JSON, and which
operations are deprecated; and what production leaves out of it: the paths no client outside the deployment calls."""
from __future__ import annotations

from apiflask import APIFlask

from app.core.errors import ERROR_SCHEMA

HTTP_ERROR = "HTTPError"  # the component apiflask names after HTTP_ERROR_SCHEMA
DEPRECATED_PREFIXES = ("/api/booking/",)  # app/api/booking.py: superseded by /api/v1 and /api/internal
# Not documented in production: the bot's API and the deprecated one have no reader outside this deployment.
UNPUBLISHED_PREFIXES = ("/api/internal/", *DEPRECATED_PREFIXES)
SCHEMA_REF = "#/components/schemas/"
INVALID_JSON = {
    "description": "The request body is not valid JSON (error code `invalid_json`)",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{HTTP_ERROR}"}}},
}


def register_spec_processor(app: APIFlask) -> None:
    public_only = app.extensions["linli_settings"].is_production

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
        if public_only:
            _keep_published_paths(spec)
        return spec


def _keep_published_paths(spec: dict) -> None:
    """Drop the unpublished paths, and the schemas, tags and security schemes only they used."""
    paths = spec.get("paths", {})
    published = {path: ops for path, ops in paths.items() if not path.startswith(UNPUBLISHED_PREFIXES)}
    hidden = {path: ops for path, ops in paths.items() if path not in published}
    spec["paths"] = published
    components = spec.get("components", {})
    schemas = components.get("schemas", {})
    for name in _reachable(hidden, schemas) - _reachable(published, schemas):
        del schemas[name]
    hidden_tags = _tags(hidden) - _tags(published)
    spec["tags"] = [tag for tag in spec.get("tags", []) if tag["name"] not in hidden_tags]
    for name in _security_schemes(hidden) - _security_schemes(published):
        components.get("securitySchemes", {}).pop(name, None)


def _operations(paths: dict) -> list[dict]:
    return [op for ops in paths.values() for op in ops.values() if isinstance(op, dict)]


def _tags(paths: dict) -> set[str]:
    return {tag for op in _operations(paths) for tag in op.get("tags", [])}


def _security_schemes(paths: dict) -> set[str]:
    return {name for op in _operations(paths) for requirement in op.get("security", []) for name in requirement}


def _reachable(paths: dict, schemas: dict) -> set[str]:
    used, frontier = set(), _schema_refs(paths)
    while frontier:  # schemas refer to schemas
        used |= frontier
        frontier = _schema_refs([schemas[name] for name in frontier if name in schemas]) - used
    return used


def _schema_refs(node) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref[len(SCHEMA_REF):]} if isinstance(ref, str) and ref.startswith(SCHEMA_REF) else set()
        return found.union(*(_schema_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_schema_refs(value) for value in node))
    return set()


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
