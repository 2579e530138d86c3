"""Refuse bodies that are not JSON, and text no database can store, before any route sees it.

PostgreSQL rejects NUL (U+0000) in ``text`` and ``jsonb``, and no driver can encode an
unpaired surrogate (JSON allows ``"\\ud800"``) as UTF-8. Left to the database, either is a
500 after the route has done its work; here it is a 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

MESSAGE = "Text must not contain NUL (U+0000) or unpaired surrogates."


NOT_JSON = "The request body must be JSON: send it with `Content-Type: application/json`."


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def require_json_body(request: Request) -> None:
    """Dependency: a 415 for a non-empty body that is not declared JSON, on a route taking one.

    FastAPI would hand such a body to validation as bytes (and a body without a Content-Type
    too: it parses only declared JSON), which answers a misleading 422. An empty body is left to
    the route, whose body may be optional.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
    content_type = request.headers.get("content-type")
    if (content_type is None or not is_json_media_type(content_type)) and await request.body():
        raise HTTPException(415, NOT_JSON)


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if not storable(value):
            yield loc
    elif isinstance(value, dict):
        for key, child in value.items():
            if not storable(key):
                yield (*loc, key)
            yield from _unstorable(child, (*loc, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _unstorable(child, (*loc, index))


async def _json_body(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", ""):
        return None
    body = await request.body()
    try:
        return json.loads(body) if body else None
    except ValueError:
        # Malformed JSON gets its own 400 from the route's body validation.
        return None


async def reject_unstorable_text(request: Request) -> None:
    """Dependency: a 422 for NUL or unpaired surrogates in the path, the query or a JSON body."""
    bad: list[tuple[str | int, ...]] = [
        ("path", name) for name, value in request.path_params.items() if isinstance(value, str) and not storable(value)
    ]
    bad += [
        ("query", key) for key, value in request.query_params.multi_items() if not (storable(key) and storable(value))
    ]
    bad += _unstorable(await _json_body(request), ("body",))
    if bad:
        raise RequestValidationError([{"loc": loc, "msg": MESSAGE, "type": "string_unstorable"} for loc in bad])
