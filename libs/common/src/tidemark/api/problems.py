"""RFC 9457 problem responses: every error a client sees has one shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tidemark.db.errors import unavailable
from tidemark.errors import TidemarkError
from tidemark.logs import fields

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://tidemark.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, type_: str, title: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": PROBLEM_BASE + type_, "title": title, "status": status, "detail": detail, **extra}
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=all_headers or None)


def _field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _tidemark_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TidemarkError)
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.message, exc_info=exc)
    return problem(exc.status_code, exc.problem_type, exc.title, exc.message, kind=exc.kind.value, **exc.detail)


def _position(document: Any, offset: Any) -> str:
    """``line L, column C`` (both from 1) of an offset into the text (or bytes), as :mod:`json` counts them."""
    if not isinstance(document, str | bytes) or not isinstance(offset, int):
        return "an unknown position"
    newline: Any = "\n" if isinstance(document, str) else b"\n"
    line = document.count(newline, 0, offset) + 1
    column = offset - document.rfind(newline, 0, offset)
    return f"line {line}, column {column}"


def _malformed_json_problem(message: str) -> JSONResponse:
    return problem(400, "malformed-json", "Malformed JSON", f"The request body is not valid JSON: {message}.",
                   errors=[{"field": "body", "message": message, "type": "json_invalid"}])


def _malformed_json(exc: RequestValidationError, error: Mapping[str, Any]) -> JSONResponse:
    # FastAPI puts the offset where the field goes (loc = ("body", offset)) and the document in
    # exc.body; a person needs the line and column, and the field is the body itself.
    loc = error.get("loc", ())
    offset = loc[1] if len(loc) > 1 else None
    reason = str((error.get("ctx") or {}).get("error", "invalid JSON"))
    return _malformed_json_problem(f"{reason} at {_position(exc.body, offset)}")


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    malformed = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        return _malformed_json(exc, malformed)
    errors = [
        {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid"), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "validation", "Invalid request", summary, errors=errors)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path; Starlette's 405 names only one route's."""
    routes = request.app.router.routes
    allowed = [
        method for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


SLUGS = {
    401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed", 415: "unsupported-media-type"
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        # FastAPI's "error parsing the body": JSON declared, but the bytes are not text (the
        # column counts bytes here).
        where = _position(cause.object, cause.start)
        return _malformed_json_problem(f"not {cause.encoding} text ({cause.reason}) at {where}")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    slug = SLUGS.get(exc.status_code, "http-error")
    # Keep the exception's headers: a 405 must say which methods are allowed (RFC 9110 `Allow`).
    return problem(exc.status_code, slug, slug.replace("-", " ").capitalize(), str(exc.detail), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if unavailable(exc):
        # The service's database is restarting or unreachable (a driver error SQLAlchemy did not wrap):
        # the same 503 as a busy database, which the client may retry.
        return await _database_busy(request, exc)
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal", "Internal error", "An unexpected error occurred; it has been logged.")


async def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    # Every connection of the service's database stayed busy for the pool's whole timeout, or the
    # database itself could not run the statement now (SQLite's "database is locked", a dropped
    # connection): an overload or outage a retry can outlast, so a 503 with Retry-After, not a 500.
    log.warning("the service database could not serve the request in time", extra=fields(error=str(exc)))
    return problem(503, "unavailable", "Dependency unavailable",
                   "the service's database is busy or unavailable right now; retry shortly",
                   headers={"Retry-After": "1"}, kind="transient")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(sa_exc.TimeoutError, _database_busy)
    app.add_exception_handler(sa_exc.OperationalError, _database_busy)
    app.add_exception_handler(TidemarkError, _tidemark_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
