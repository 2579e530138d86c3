"""Request body limits, enforced before any route or parser sees the body.

* A body larger than ``max_body_bytes`` is a 413: refused on its ``Content-Length`` before a
  byte is read, and for a chunked body (no length) as soon as the bytes received pass the limit.
* A JSON body nested deeper than ``max_json_depth`` is a 413 too, found by a scan of its brackets
  before ``json.loads`` runs (whose recursion a deep document could otherwise exhaust).

The body is read here once, within the limit, and handed on unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tidemark.api.inputs import is_json_media_type
from tidemark.api.problems import problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A JSON string (escapes included): its brackets are text, not structure.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body`` opens more than ``limit`` nested arrays or objects (malformed JSON is left to the parser)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodyLimits:
    """ASGI middleware applying :data:`max_body_bytes` and :data:`max_json_depth` to every HTTP request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send, f"The request body has {int(declared)} bytes")
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await self._too_large(scope, receive, send, f"The request body has more than {received - 1} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and is_json_media_type(headers.get("content-type", "")) \
                and json_depth_exceeds(body, self.max_json_depth):
            response = problem(413, "body-too-deep", "Request body too deeply nested",
                               f"The JSON body nests arrays and objects more than {self.max_json_depth} levels deep.",
                               errors=[{"field": "body", "message": f"nested more than {self.max_json_depth} levels",
                                        "type": "json_too_deep"}])
            await response(scope, receive, send)
            return
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, found: str) -> None:
        response = problem(413, "body-too-large", "Request body too large",
                           f"{found}; the limit is {self.max_body_bytes} bytes.",
                           errors=[{"field": "body", "message": f"larger than {self.max_body_bytes} bytes",
                                    "type": "body_too_large"}],
                           headers={"Connection": "close"})
        await response(scope, receive, send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that hands on ``first`` (the buffered body), then the client's own messages
    (a streaming response listens there for the client going away)."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
