"""Make the OpenAPI document tell the truth about errors.

FastAPI documents a 422 as ``application/json`` in its own shape, and nothing else; every
error we send is an RFC 9457 problem (see :mod:`tidemark.api.problems`). Here each operation
gets the problem responses that follow from its own description: 401 where it needs a token,
400 for a JSON body that does not parse, 415 for a body that is not JSON, 404 for a path naming
a resource, 422 for invalid input.
Responses that depend on a route's own rules (409, 503) the route declares with
:func:`problem_responses`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from tidemark.api.problems import MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; some problems add members such as `errors` or `field`.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, safe to show."},
        "kind": {"type": "string", "enum": ["config", "transient", "terminal"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["field", "message", "type"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or invalid bearer token",
    403: "The token's scope does not allow this request",
    404: "Not found",
    409: "Conflicts with the current state",
    415: "The body is not JSON",
    422: "Invalid request",
    503: "A dependency is unavailable; try again",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer these problems beyond the generic ones."""
    return {code: _problem(code) for code in codes}


def _problem(code: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(code, "Problem"),
        "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        # FastAPI caches its document and regenerates it when routes change; document each once.
        if not documented or documented[0] is not schema:
            document_problems(schema)
            documented[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(schema: dict[str, Any]) -> None:
    """Document the problems every operation can answer, judged from the document itself."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            has_body = "requestBody" in operation
            if operation.get("security"):
                responses.setdefault("401", _problem(401))
            if any("bearer" in requirement for requirement in operation.get("security", [])):
                responses.setdefault("403", _problem(403))
            if has_body:
                responses.setdefault("400", _problem(400))
                responses.setdefault("415", _problem(415))
            if any(p.get("in") == "path" for p in parameters):
                responses.setdefault("404", _problem(404))
            if "422" in responses or parameters or has_body:
                # FastAPI's own 422 is replaced: ours is a problem document.
                responses["422"] = _problem(422)
    # FastAPI's validation error schemas are no longer referenced once every 422 is a problem.
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
