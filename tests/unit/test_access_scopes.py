"""Scopes over the whole platform: every /v1 route of every service, enumerated from the embedded app's
route table (so a new route cannot forget its scope), refuses a missing or unknown token with 401, a read
token on anything but GET and HEAD with 403, a write token on token and alert-rule routes with 403; the
internal token opens no /v1 route and a user token no /internal route; no denial log line holds a token."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from tidemark.api.auth import require_admin, require_internal_token, require_token
from tidemark.bus import MemoryBus
from tidemark.settings import KafkaSettings
from tidemark_cli.embedded import Embedded, create_embedded_app
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit

ADMIN = "access-admin-token"
INTERNAL = "access-internal-token"
ADMIN_PREFIXES = {"/v1/tokens", "/v1/alert-rules"}
PROBLEM = "application/problem+json"


def _guards(route: RouteContext) -> set[Any]:
    return {d.call for d in route.dependant.dependencies}


def operations(app: FastAPI, prefix: str) -> list[tuple[str, str, RouteContext]]:
    """(method, concrete path, route) of every operation under ``prefix``, as the app serves it (its
    routers' dependencies included); path parameters get a fresh uuid (valid for every id and name)."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and (route.path_format or "").startswith(prefix):
            path = str(route.path_format)
            for param in route.dependant.path_params:
                path = path.replace("{" + param.name + "}", str(uuid.uuid4()))
            found += [(method, path, route) for method in sorted(route.methods or ())]
    return found


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    env = Embedded(home=tmp_path, url="http://127.0.0.1:9", api_token=ADMIN, internal_token=INTERNAL,
                   kafka=KafkaSettings())
    app = create_embedded_app(env, bus=MemoryBus())
    async with running(app) as client:
        yield app, client


async def issue(client: httpx.AsyncClient, name: str, scope: str) -> str:
    created = await client.post("/v1/tokens", json={"name": name, "scope": scope}, headers=bearer(ADMIN))
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return await client.request(method, path, json=body, headers=headers)


def assert_problem(response: httpx.Response, status: int, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith(PROBLEM), what
    assert response.json()["status"] == status, what


async def test_every_v1_route_needs_the_scope_its_method_or_resource_asks_for(
        platform: tuple[FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture) -> None:
    app, client = platform
    reader, writer = await issue(client, "reader", "read"), await issue(client, "writer", "write")
    caplog.set_level(logging.WARNING)
    v1 = operations(app, "/v1/")
    assert len(v1) > 40  # every service's API is mounted
    admin_prefixes = set()
    for method, path, route in v1:
        what = f"{method} {route.path_format}"
        guards = _guards(route)
        # Every /v1 operation carries exactly one of the two user guards, and never the internal one.
        assert len(guards & {require_token, require_admin}) == 1, what
        assert require_internal_token not in guards, what
        admin = require_admin in guards
        if admin:
            admin_prefixes.add("/".join(str(route.path_format).split("/")[:3]))
        for token in (None, "not-a-token", INTERNAL):
            response = await call(client, method, path, token)
            assert_problem(response, 401, f"{what} with {token!r}")
            assert response.headers["www-authenticate"] == "Bearer"
        if admin:
            for token in (reader, writer):
                assert_problem(await call(client, method, path, token), 403, f"{what} as non-admin")
            assert (await call(client, method, path, ADMIN)).status_code not in (401, 403), what
        elif method in ("GET", "HEAD"):
            assert (await call(client, method, path, reader)).status_code not in (401, 403), what
        else:
            refused = await call(client, method, path, reader)
            assert_problem(refused, 403, f"{what} as reader")
            assert refused.json()["required_scope"] == "write"
            assert (await call(client, method, path, writer)).status_code not in (401, 403), what
    # Only admins manage tokens and alert rules (whose webhook URLs are secrets); nothing else is admin-only.
    assert admin_prefixes == ADMIN_PREFIXES

    denials = [r for r in caplog.records if r.getMessage().startswith("access denied")]
    logged_fields = [getattr(r, "fields", {}) for r in denials]
    assert any(f.get("status") == 403 and f.get("token") == "reader" for f in logged_fields)
    assert any(f.get("status") == 401 and f.get("token") == "-" for f in logged_fields)
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    for secret in (reader, writer, ADMIN, INTERNAL, "not-a-token"):
        assert secret not in logged


async def test_internal_routes_take_only_the_internal_token(platform: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = platform
    reader = await issue(client, "reader", "read")
    internal = operations(app, "/internal/")
    assert internal
    for method, path, route in internal:
        what = f"{method} {route.path_format}"
        assert require_internal_token in _guards(route), what
        for token in (None, ADMIN, reader):
            assert_problem(await call(client, method, path, token), 401, f"{what} with a user token")
        assert (await call(client, method, path, INTERNAL)).status_code not in (401, 403), what


async def test_the_openapi_document_names_the_token_and_the_403_of_every_v1_operation(
        platform: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = platform
    document = (await client.get("/openapi.json")).json()
    for path, operations_ in document["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in operations_.items():
                assert operation["security"] == [{"bearer": []}], f"{method} {path}"
                assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
