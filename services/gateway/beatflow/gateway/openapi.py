"""The error answers every operation can give, added to the OpenAPI description.

Routes document what is particular to them (409 on a stale head, 416 on a
range); the answers that come from the shared machinery are added here, to
every ``/api`` operation where they can occur, so a client (or a fuzzer) never
meets an undocumented status:

* 400: a backend refused an argument (INVALID_ARGUMENT); 401: no or a bad
  token (operations that need one); 404: a named object does not exist or is
  not visible; 409: a vcs write conflicts (name taken, branch moved) or an
  ``Idempotency-Key`` was reused with another body; 413: a
  JSON body over ``max_json_body_bytes``; 422: the request does not match
  this schema (or is malformed JSON); 429: throttled (with
  ``Retry-After``); 503: a backend, Redis or the blob store is unreachable (with
  ``Retry-After``); 504: a backend did not answer in time.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorOut",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
            "description": "What went wrong (validation errors: one object per problem)",
        },
        "code": {"type": "string", "description": "The backend's status name, e.g. NOT_FOUND, DATA_LOSS"},
    },
    "additionalProperties": True,
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}

# status -> (description, when it applies)
_COMMON: dict[str, tuple[str, str]] = {
    "400": ("A backend refused an argument", "api"),
    "401": ("Not signed in, or the token is invalid, expired or revoked", "secured"),
    "404": ("A named object does not exist or is not visible to the caller", "api"),
    "409": ("Conflict: the name exists, the branch moved, or an Idempotency-Key was reused", "conflict"),
    "413": ("The request body is larger than the limit", "body"),
    "422": ("The request does not match the schema (or is malformed JSON)", "input"),
    "429": ("Too many requests; see Retry-After", "api"),
    "503": ("A backend service, Redis or the blob store is unavailable; see Retry-After", "any"),
    "504": ("A backend did not answer in time", "api"),
}


def _applies(when: str, path: str, method: str, op: dict[str, Any]) -> bool:
    api = path.startswith("/api/")
    if when == "any":
        return api or path == "/health"
    if when == "api":
        return api
    if when == "secured":
        return api and bool(op.get("security"))
    if when == "body":
        return api and "requestBody" in op
    if when == "conflict":  # vcs writes, and operations taking an Idempotency-Key
        writes = path.startswith(("/api/repositories", "/api/vcs")) and method != "get"
        return writes or any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", []))
    if when == "input":
        return api and ("requestBody" in op or bool(op.get("parameters")))
    raise ValueError(when)


NOT_NUL = "^[^\\x00]*$"
# Free-form JSON as the services can store it: any JSON value, but no NUL in text or keys.
JSON_VALUE: dict[str, Any] = {
    "title": "JsonValue",
    "anyOf": [
        {"type": "string", "pattern": NOT_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NOT_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}


def _no_nul(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    """State in request schemas what every request body validator enforces: no NUL in any text."""
    if isinstance(node, list):
        for item in node:
            _no_nul(item, components, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components:
            seen.add(name)
            _no_nul(components[name], components, seen)
        return
    if node.get("type") == "string" and "pattern" not in node and "enum" not in node and "format" not in node:
        node["pattern"] = NOT_NUL
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        node["propertyNames"] = {"pattern": NOT_NUL}
        node["additionalProperties"] = {"$ref": "#/components/schemas/JsonValue"}
    for key, value in node.items():
        if key not in ("$ref", "enum", "const", "default", "examples", "example"):
            _no_nul(value, components, seen)


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error answers to every operation of an OpenAPI document (in place; returned)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorOut"] = ERROR_SCHEMA
    components["JsonValue"] = JSON_VALUE
    seen: set[str] = set()
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in {"get", "put", "post", "patch", "delete", "head"}:
                continue
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                _no_nul(op["requestBody"]["content"]["application/json"], components, seen)
            responses = op.setdefault("responses", {})
            for status, (description, when) in _COMMON.items():
                if status in responses or not _applies(when, path, method, op):
                    continue
                response: dict[str, Any] = {
                    "description": description,
                    "content": {"application/json": {"schema": _ERROR_REF}},
                }
                if status in ("429", "503"):
                    response["headers"] = _RETRY_AFTER
                responses[status] = response
    return schema


def install(app: FastAPI) -> None:
    """Serve the OpenAPI description with the shared error answers added."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                servers=app.servers,
            )
            app.openapi_schema = add_error_responses(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
