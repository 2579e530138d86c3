"""A service whose database is too busy answers 503 with Retry-After, never a 500 (found by `make
bench-api` and `make bench-burst`: 200 clients exhausted connector-svc's pool; 50 triggers at once
met SQLite's "database is locked")."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from tidemark.api.problems import install_problem_handlers

pytestmark = pytest.mark.unit


BUSY = [sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out"),
        sa_exc.OperationalError("INSERT INTO runs ...", {}, Exception("database is locked"))]


@pytest.mark.parametrize("error", BUSY, ids=["pool-exhausted", "database-locked"])
async def test_a_busy_database_is_a_503_a_client_may_retry(error: Exception) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/busy")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/unavailable")
    assert "QueuePool" not in body["detail"]  # internals stay in the log
    assert "INSERT" not in body["detail"]
