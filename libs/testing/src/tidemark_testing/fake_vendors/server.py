"""Serve a fake vendor on loopback in a background thread, with the faults tests switch on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tidemark_testing.rest_catalog import RestCatalogServer


@dataclass
class Faults:
    """Failures the next requests meet, counted down as they are served (token endpoints excepted)."""

    too_many: int = 0
    retry_after: str = "1"
    server_errors: int = 0
    server_error_status: int = 503
    requests: int = 0

    def next(self) -> Response | None:
        self.requests += 1
        if self.too_many > 0:
            self.too_many -= 1
            return JSONResponse({"message": "You have reached your secondly limit."}, status_code=429,
                                headers={"Retry-After": self.retry_after})
        if self.server_errors > 0:
            self.server_errors -= 1
            return JSONResponse({"message": "internal error"}, status_code=self.server_error_status)
        return None


def install_faults(app: FastAPI, faults: Faults, exempt: tuple[str, ...] = ()) -> None:
    @app.middleware("http")
    async def _faults(request: Request, call_next):  # type: ignore[no-untyped-def]
        if not request.url.path.startswith(exempt) and (failed := faults.next()) is not None:
            return failed
        return await call_next(request)


def install_clock(app: FastAPI) -> None:
    """An exact ``Date`` header on every answer, as a vendor's front end sends it (uvicorn's own is
    refreshed about once a second, later under load, and sources end incremental reads at it)."""

    @app.middleware("http")
    async def _date(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["date"] = formatdate(usegmt=True)
        return response


class _Server(RestCatalogServer):
    def __init__(self, app: FastAPI) -> None:
        super().__init__(app)
        self._server.config.date_header = False


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a free loopback port, with an exact ``Date`` header; yields its base URL."""
    install_clock(app)
    server = _Server(app)
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (OAuth token requests), without python-multipart."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl((await request.body()).decode()))
