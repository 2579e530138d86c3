"""Services' way to connector-svc's internal routes: a connection's config (workers) and its
discovered catalog (orchestrator-svc validating pipelines)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.connectors.client import adiscover_catalog, afetch_connection_config, fetch_connection_config
from tidemark.errors import (
    ConfigError,
    FailureKind,
    NotFoundError,
    SourceError,
    TerminalError,
    TidemarkError,
    TransientError,
)
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
INTERNAL = "internal-token"
BASE = "http://test"


async def test_async_fetch_against_the_service(tmp_path: Path) -> None:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr(INTERNAL)),
        bus="memory",
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as client:
        created = await client.post(
            "/v1/connections", json={"name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}}
        )
        cid = created.json()["id"]
        connector_type, config = await afetch_connection_config(BASE, INTERNAL, cid, client=client)
        assert connector_type == "sqlite"
        assert config == {"path": "sample:shop", "batch_size": 50_000}

        with pytest.raises(ConfigError, match="does not exist"):
            await afetch_connection_config(BASE, INTERNAL, "0190f0c8-0000-7000-8000-000000000000", client=client)
        with pytest.raises(ConfigError, match="internal token"):
            await afetch_connection_config(BASE, TOKEN, cid, client=client)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_sync_fetch_maps_an_unreachable_service_to_transient() -> None:
    base = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TransientError, match="unreachable"):
        fetch_connection_config(base, INTERNAL, "0190f0c8-0000-7000-8000-000000000000", timeout_seconds=2)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"detail": "connection x does not exist"}, ConfigError),
        (401, {"detail": "Invalid bearer token."}, ConfigError),
        (422, {"detail": "stored connection secrets cannot be decrypted"}, ConfigError),
        (503, {"detail": "connector database unavailable"}, TransientError),
        (500, {"detail": "An unexpected error occurred"}, TransientError),
        (400, {"detail": "bad"}, TerminalError),
        (200, {"unexpected": True}, TerminalError),
    ],
)
def test_sync_fetch_classifies_answers(status: int, body: dict[str, object], error: type[Exception]) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client, pytest.raises(error):
        fetch_connection_config("http://connector:8000/", INTERNAL, "abc", client=client)
    assert str(seen[0].url) == "http://connector:8000/internal/v1/connections/abc/config"
    assert seen[0].headers["authorization"] == f"Bearer {INTERNAL}"


def test_sync_fetch_returns_type_and_config() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "abc", "type": "vault", "config": {"password": "p"}})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert fetch_connection_config("http://c", INTERNAL, "abc", client=client) == ("vault", {"password": "p"})


async def test_async_discover_against_the_service(tmp_path: Path) -> None:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr(INTERNAL)),
        bus="memory",
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as client:
        shop = (await client.post(
            "/v1/connections", json={"name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}}
        )).json()["id"]
        catalog = await adiscover_catalog(BASE, INTERNAL, shop, client=client)
        orders = catalog.stream("main.orders")
        assert orders is not None
        assert orders.primary_key == ["id"]
        assert "updated_at" in orders.cursor_candidates

        # The internal route needs the internal token; the API token is refused.
        assert (await client.post(f"/internal/v1/connections/{shop}/discover")).status_code == 401
        with pytest.raises(ConfigError, match="internal token"):
            await adiscover_catalog(BASE, TOKEN, shop, client=client)
        with pytest.raises(NotFoundError, match="does not exist") as missing:
            await adiscover_catalog(BASE, INTERNAL, "0190f0c8-0000-7000-8000-000000000000", client=client)
        assert missing.value.detail == {"field": "connection_id"}

        gone = (await client.post(
            "/v1/connections", json={"name": "gone", "type": "sqlite", "config": {"path": str(tmp_path / "x.db")}}
        )).json()["id"]
        with pytest.raises(SourceError, match="no SQLite database") as refused:
            await adiscover_catalog(BASE, INTERNAL, gone, client=client)
        assert refused.value.kind is FailureKind.CONFIG


async def test_async_discover_maps_an_unreachable_service_to_transient() -> None:
    base = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TransientError, match="unreachable"):
        await adiscover_catalog(base, INTERNAL, "0190f0c8-0000-7000-8000-000000000000", timeout_seconds=2)


SOURCE_PROBLEM = "https://tidemark.dev/problems/source-error"


@pytest.mark.parametrize(
    ("status", "body", "error", "kind"),
    [
        (503, {"type": SOURCE_PROBLEM, "detail": "connection refused", "kind": "transient"}, SourceError,
         FailureKind.TRANSIENT),
        (422, {"type": SOURCE_PROBLEM, "detail": "password authentication failed", "kind": "config"},
         SourceError, FailureKind.CONFIG),
        (422, {"type": SOURCE_PROBLEM, "detail": "driver bug", "kind": "terminal"}, SourceError,
         FailureKind.TERMINAL),
        (503, {"type": "https://tidemark.dev/problems/unavailable", "detail": "connector database unavailable"},
         TransientError, FailureKind.TRANSIENT),
        (500, {"detail": "An unexpected error occurred"}, TransientError, FailureKind.TRANSIENT),
        (400, {"detail": "bad"}, TerminalError, FailureKind.TERMINAL),
        (200, {"streams": "not a list"}, TerminalError, FailureKind.TERMINAL),
    ],
)
async def test_async_discover_classifies_answers(
    status: int, body: dict[str, object], error: type[TidemarkError], kind: FailureKind
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(error) as raised:
            await adiscover_catalog("http://connector:8000/", INTERNAL, "abc", client=client)
    assert raised.value.kind is kind
    assert seen[0].method == "POST"
    assert str(seen[0].url) == "http://connector:8000/internal/v1/connections/abc/discover"
    assert seen[0].headers["authorization"] == f"Bearer {INTERNAL}"
