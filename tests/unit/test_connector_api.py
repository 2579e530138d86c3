from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import httpx
import pyarrow as pa
import pytest
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY
from pydantic import Field, SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.connectors import Catalog, ConnectorConfig, Source, StreamState, registry
from tidemark.errors import FailureKind, SourceError
from tidemark.events import ConnectionChanged, StreamSpec, Topic
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
INTERNAL = "internal-token"
PASSWORD = "open-sesame-4711"
MASK = "**********"


class VaultConfig(ConnectorConfig):
    host: str = Field(description="Host name.")
    port: int = Field(default=5432, ge=1, le=65535, description="Port.")
    password: SecretStr = Field(description="Password.")


def leaky_error(password: str) -> SourceError:
    """A connector's own error that echoes the DSN, password in clear and URL-encoded."""
    return SourceError(f"server closed the connection: postgresql://app:{quote(password, safe='')}@leak/db "
                       f"(password {password})", FailureKind.TRANSIENT, field="host")


# Lets a test hold a check open for as long as it likes.
SLOW_CHECK = threading.Event()


class VaultSource(Source):
    """A source with a secret, so the tests can follow a password around."""

    type_name: ClassVar[str] = "vault"
    title: ClassVar[str] = "Vault (test)"
    config_model: ClassVar[type[ConnectorConfig]] = VaultConfig

    def check(self) -> None:
        assert isinstance(self.config, VaultConfig)
        password = self.config.password.get_secret_value()
        if self.config.host == "crash":
            raise RuntimeError(f"could not connect to postgresql://app:{password}@crash:5432/db")
        if self.config.host == "leak":
            raise leaky_error(password)
        if self.config.host == "slow":
            SLOW_CHECK.wait(10)
        if password != PASSWORD:
            raise SourceError("authentication failed for user app", FailureKind.CONFIG)

    def discover(self) -> Catalog:
        assert isinstance(self.config, VaultConfig)
        if self.config.host == "leak":
            raise leaky_error(self.config.password.get_secret_value())
        return Catalog(streams=[])


    def arrow_schema(self, stream: StreamSpec) -> pa.Schema:
        raise NotImplementedError

    def read(self, stream: StreamSpec, state: StreamState | None) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def vault_connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.BUILTIN, "vault", f"{__name__}:VaultSource")
    registry._all_paths.cache_clear()
    yield
    monkeypatch.undo()
    registry._all_paths.cache_clear()


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


AppFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def start(tmp_path: Path, bus: MemoryBus) -> AppFactory:
    """Start the service on one database; keyword arguments override settings."""

    def _start(**over: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "database": DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
            "auth": AuthSettings(tokens=[SecretStr(TOKEN)]),
            "platform": PlatformSettings(home=tmp_path / "home", internal_token=SecretStr(INTERNAL)),
            "bus": "memory",
            "secret_key": SecretStr(Fernet.generate_key().decode()),
        }
        values.update(over)
        app = build_app([(DEFINITION, ConnectorSettings(**values))], title="t", bus=bus, migrate=True)
        return running(app, TOKEN)

    return _start


@pytest.fixture
async def client(start: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with start() as c:
        yield c


def internal(token: str = INTERNAL) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_vault(client: httpx.AsyncClient, name: str = "warehouse", **config: Any) -> dict[str, Any]:
    body = {"name": name, "type": "vault", "config": {"host": "db.local", "password": PASSWORD, **config}}
    response = await client.post("/v1/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def published_changes(bus: MemoryBus, count: int) -> list[ConnectionChanged]:
    for _ in range(100):
        if len(bus.published[Topic.CONNECTIONS]) >= count:
            break
        await asyncio.sleep(0.02)
    return [e.payload_as(ConnectionChanged) for e in bus.published[Topic.CONNECTIONS]]


async def test_sample_connection_checks_and_discovers(client: httpx.AsyncClient) -> None:
    types = (await client.get("/v1/connector-types")).json()
    sqlite_type = next(t for t in types if t["type"] == "sqlite")
    assert "path" in sqlite_type["config_schema"]["properties"]
    assert sqlite_type["secret_fields"] == []
    assert next(t for t in types if t["type"] == "vault")["secret_fields"] == ["password"]

    created = await client.post("/v1/connections",
                                json={"name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert created.json()["type"] == "sqlite"
    assert created.json()["config"]["path"] == "sample:shop"

    check = await client.post(f"/v1/connections/{cid}/check")
    assert check.status_code == 200
    assert check.json() == {"status": "succeeded"}

    discovered = await client.post(f"/v1/connections/{cid}/discover")
    assert discovered.status_code == 200, discovered.text
    orders = next(s for s in discovered.json()["streams"] if s["name"] == "main.orders")
    assert orders["primary_key"] == ["id"]
    assert "id" in [c["name"] for c in orders["columns"]]


async def test_check_of_a_missing_file_fails_naming_the_path(client: httpx.AsyncClient, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gone.sqlite"
    created = await client.post("/v1/connections",
                                json={"name": "gone", "type": "sqlite", "config": {"path": str(missing)}})
    cid = created.json()["id"]
    check = await client.post(f"/v1/connections/{cid}/check")
    assert check.status_code == 200
    result = check.json()
    assert result["status"] == "failed"
    assert result["kind"] == "config"
    assert str(missing) in result["message"]
    # Discovering the same connection is a problem response, not a 500.
    discovered = await client.post(f"/v1/connections/{cid}/discover")
    assert discovered.status_code == 422
    assert discovered.headers["content-type"] == "application/problem+json"
    assert str(missing) in discovered.json()["detail"]


async def test_secrets_are_masked_encrypted_and_kept_on_patch(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await create_vault(client)
    cid = created["id"]
    assert created["config"] == {"host": "db.local", "port": 5432, "password": MASK}
    for response in (await client.get(f"/v1/connections/{cid}"), await client.get("/v1/connections")):
        assert response.status_code == 200
        assert PASSWORD not in response.text
        assert MASK in response.text

    # Change a plain field only: the password stays.
    patched = await client.patch(f"/v1/connections/{cid}", json={"config": {"port": 6543}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {"host": "db.local", "port": 6543, "password": MASK}
    # Sending the mask back, as a form round-trip would, keeps it too.
    await client.patch(f"/v1/connections/{cid}", json={"config": {"password": MASK, "host": "db2.local"}})
    check = await client.post(f"/v1/connections/{cid}/check")
    assert check.json() == {"status": "succeeded"}

    revealed = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
    assert revealed.status_code == 200
    assert revealed.json() == {
        "id": cid, "type": "vault", "config": {"host": "db2.local", "port": 6543, "password": PASSWORD},
    }

    # Nothing at rest holds the plaintext: not the row, not the outbox.
    with sqlite3.connect(tmp_path / "c.db") as db:
        rows = db.execute("SELECT * FROM connections").fetchall() + db.execute("SELECT * FROM outbox").fetchall()
    assert rows
    assert not any(PASSWORD in str(value) for row in rows for value in row)

    # A new password replaces the old one.
    await client.patch(f"/v1/connections/{cid}", json={"config": {"password": "new-secret-99"}})
    revealed = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
    assert revealed.json()["config"]["password"] == "new-secret-99"
    failed = (await client.post(f"/v1/connections/{cid}/check")).json()
    assert failed == {"status": "failed", "message": "authentication failed for user app", "kind": "config"}


async def test_internal_route_needs_the_internal_token(client: httpx.AsyncClient) -> None:
    cid = (await create_vault(client))["id"]
    with_api_token = await client.get(f"/internal/v1/connections/{cid}/config")
    assert with_api_token.status_code == 401
    assert PASSWORD not in with_api_token.text
    wrong = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal("guess"))
    assert wrong.status_code == 401
    # And the internal token is not an API token.
    assert (await client.get("/v1/connections", headers=internal())).status_code == 401


async def test_changes_are_published_as_connection_changed(client: httpx.AsyncClient, bus: MemoryBus) -> None:
    cid = (await create_vault(client))["id"]
    renamed = await client.patch(f"/v1/connections/{cid}", json={"name": "warehouse-2"})
    assert renamed.json()["name"] == "warehouse-2"
    deleted = await client.delete(f"/v1/connections/{cid}")
    assert deleted.status_code == 204
    changes = await published_changes(bus, 3)
    assert [(str(c.connection_id), c.change, c.name, c.connector_type) for c in changes] == [
        (cid, "created", "warehouse", "vault"),
        (cid, "updated", "warehouse-2", "vault"),
        (cid, "deleted", "warehouse-2", "vault"),
    ]
    assert not any(PASSWORD in e.model_dump_json() for e in bus.published[Topic.CONNECTIONS])
    gone = await client.get(f"/v1/connections/{cid}")
    assert gone.status_code == 404


async def test_invalid_configs_name_the_field_and_never_echo_secrets(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/connections", json={"name": "a", "type": "sqlite", "config": {}})
    assert missing.status_code == 422
    assert missing.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in missing.json()["errors"]] == ["config.path"]

    bad = await client.post("/v1/connections", json={
        "name": "b", "type": "vault",
        "config": {"host": "h", "port": "not-a-port", "password": PASSWORD, "colour": "blue"},
    })
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == ["config.colour", "config.port"]
    assert PASSWORD not in bad.text

    unknown = await client.post("/v1/connections", json={"name": "c", "type": "oracle-9i", "config": {}})
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["type"]
    assert "oracle-9i" in unknown.json()["detail"]

    bad_name = await client.post("/v1/connections", json={"name": "no spaces", "type": "sqlite", "config": {}})
    assert bad_name.status_code == 422
    assert "name" in [e["field"] for e in bad_name.json()["errors"]]

    cid = (await create_vault(client))["id"]
    bad_patch = await client.patch(f"/v1/connections/{cid}", json={"config": {"port": 0}})
    assert bad_patch.status_code == 422
    assert [e["field"] for e in bad_patch.json()["errors"]] == ["config.port"]
    # The refused change was not stored.
    assert (await client.get(f"/v1/connections/{cid}")).json()["config"]["port"] == 5432


async def test_duplicate_names_are_409(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await create_vault(client, "one")
    second = await create_vault(client, "two")
    again = await client.post(
        "/v1/connections", json={"name": "one", "type": "vault", "config": {"host": "h", "password": "p"}}
    )
    assert again.status_code == 409
    assert again.json()["field"] == "name"
    renamed = await client.patch(f"/v1/connections/{second['id']}", json={"name": "one"})
    assert renamed.status_code == 409
    assert (await client.get(f"/v1/connections/{second['id']}")).json()["name"] == "two"
    # Refused changes roll their events back with them.
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (2,)


async def test_a_stored_connection_whose_type_or_config_no_longer_fits_is_a_clear_4xx(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored configs outlive code: a field renamed in a new version, a connector plug-in uninstalled.
    cid = (await create_vault(client))["id"]
    # The service's relay may hold the write lock while it marks the creation's event sent, and it needs this
    # event loop to commit: write from a thread so the loop runs on and the lock is let go.
    def store_old_config() -> None:
        with sqlite3.connect(tmp_path / "c.db", timeout=60) as db:
            db.execute("UPDATE connections SET config = ?", [json.dumps({"host": "db.local", "port": "not-a-port"})])

    await asyncio.to_thread(store_old_config)
    for path, headers in [(f"/v1/connections/{cid}/check", None), (f"/v1/connections/{cid}/discover", None),
                          (f"/internal/v1/connections/{cid}/discover", internal())]:
        refused = await client.post(path, headers=headers)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert "no longer fits connector 'vault' (port); update it" in refused.json()["detail"]
        assert PASSWORD not in refused.text

    other = (await create_vault(client, name="gone"))["id"]
    monkeypatch.delitem(registry.BUILTIN, "vault")
    registry._all_paths.cache_clear()
    for method, path in [("POST", f"/v1/connections/{other}/check"), ("PATCH", f"/v1/connections/{other}")]:
        refused = await client.request(method, path, json={"config": {}} if method == "PATCH" else None)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert "vault" in refused.json()["detail"]


async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient) -> None:
    unknown = "0190f0c8-0000-7000-8000-000000000000"
    for method, path, headers in [
        ("GET", f"/v1/connections/{unknown}", None),
        ("PATCH", f"/v1/connections/{unknown}", None),
        ("DELETE", f"/v1/connections/{unknown}", None),
        ("POST", f"/v1/connections/{unknown}/check", None),
        ("POST", f"/v1/connections/{unknown}/discover", None),
        ("GET", f"/internal/v1/connections/{unknown}/config", internal()),
    ]:
        body: dict[str, object] | None = {} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert unknown in response.json()["detail"]


async def test_unexpected_driver_errors_are_failed_checks_without_the_secret(client: httpx.AsyncClient) -> None:
    cid = (await create_vault(client, host="crash"))["id"]
    before = REGISTRY.get_sample_value(
        "tidemark_connection_checks_total", {"connector_type": "vault", "outcome": "failed"}
    ) or 0.0
    check = await client.post(f"/v1/connections/{cid}/check")
    assert check.status_code == 200
    result = check.json()
    assert result["status"] == "failed"
    assert result["kind"] == "terminal"
    assert result["message"].startswith("RuntimeError: could not connect to postgresql://app:")
    assert PASSWORD not in result["message"]
    assert MASK in result["message"]
    after = REGISTRY.get_sample_value(
        "tidemark_connection_checks_total", {"connector_type": "vault", "outcome": "failed"}
    )
    assert after == before + 1
    metrics = await client.get("/metrics")
    assert 'tidemark_connection_checks_total{connector_type="vault",outcome="failed"}' in metrics.text


async def test_a_secret_in_a_connector_error_never_reaches_the_answer(client: httpx.AsyncClient) -> None:
    password = "p@ss/w:rd 1+%"  # every URL-encoded form differs from the plain one
    cid = (await create_vault(client, host="leak", password=password))["id"]
    check = (await client.post(f"/v1/connections/{cid}/check")).json()
    discover = await client.post(f"/v1/connections/{cid}/discover")
    assert discover.status_code >= 400
    for text, message in [(json.dumps(check), check["message"]), (discover.text, discover.json()["detail"])]:
        for form in (password, quote(password, safe=""), quote_plus(password)):
            assert form not in text
            assert form not in message
        assert message.count(MASK) == 2
        assert "postgresql://app:" in message
    assert (check["status"], check["kind"]) == ("failed", "transient")


async def test_a_check_that_hangs_fails_after_the_time_limit(start: AppFactory) -> None:
    SLOW_CHECK.clear()
    try:
        async with start(check_timeout_seconds=0.2) as client:
            cid = (await create_vault(client, host="slow"))["id"]
            check = await client.post(f"/v1/connections/{cid}/check")
            assert check.json() == {
                "status": "failed", "message": "the check did not finish within 0.2 s", "kind": "transient",
            }
    finally:
        SLOW_CHECK.set()


async def test_a_changed_key_is_a_clear_error_and_the_old_key_can_rotate(start: AppFactory) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with start(secret_key=SecretStr(old)) as client:
        cid = (await create_vault(client))["id"]
    async with start(secret_key=SecretStr(new)) as client:
        response = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
        assert response.status_code == 422
        problem = response.json()
        assert problem["field"] == "secret_key"
        assert "cannot be decrypted" in problem["detail"]
        assert "InvalidToken" not in response.text
        assert (await client.get(f"/v1/connections/{cid}")).status_code == 422
    async with start(secret_key=SecretStr(new), previous_secret_keys=[SecretStr(old)]) as client:
        response = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
        assert response.json()["config"]["password"] == PASSWORD
        # Saving re-encrypts with the new key, so the old one can go.
        await client.patch(f"/v1/connections/{cid}", json={"config": {"port": 5433}})
    async with start(secret_key=SecretStr(new)) as client:
        response = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
        assert response.json()["config"] == {"host": "db.local", "port": 5433, "password": PASSWORD}


async def test_without_a_key_one_is_created_in_home_and_reused(start: AppFactory, tmp_path: Path) -> None:
    key_file = tmp_path / "home" / "secret.key"
    async with start(secret_key=None) as client:
        cid = (await create_vault(client))["id"]
    assert key_file.stat().st_mode & 0o777 == 0o600
    Fernet(key_file.read_text().strip().encode())
    async with start(secret_key=None) as client:
        response = await client.get(f"/internal/v1/connections/{cid}/config", headers=internal())
        assert response.json()["config"]["password"] == PASSWORD


async def test_every_connector_types_check_and_discovery_series_start_at_zero(client: httpx.AsyncClient) -> None:
    """So the first failed check of a type is an increase a rate or an alert sees, not a new series."""
    text = (await client.get("/metrics")).text
    names = {registry.get_connector(t).type_name for t in registry.connector_types()}
    assert names == set(registry.distinct_types())  # an alias (mariadb) is counted under its class's name
    for name in names:
        for outcome in ("succeeded", "failed"):
            for metric in ("tidemark_connection_checks_total", "tidemark_catalog_discoveries_total"):
                assert f'{metric}{{connector_type="{name}",outcome="{outcome}"}}' in text, (metric, name, outcome)
