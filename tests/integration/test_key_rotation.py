"""Key rotation of connector-svc's stored secrets, on PostgreSQL: k1 → k2 with the `rotate-keys` command (a
process, as an operator runs it), k2 → k3 at start-up of two replicas at once; then a service given only k3
reads every secret back through the real path (the connection check, and the config the worker fetches)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests.fixtures.password_pg import PasswordServer
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.db import create_engine, session_factory
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector import main
from tidemark_connector.app import DEFINITION
from tidemark_connector.crypto import SecretBox
from tidemark_connector.rotation import rotate_secrets
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running
from tidemark_testing.fake_vendors.jira import FakeJira, system_field
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.integration
TOKEN, INTERNAL = "rotation-token", "rotation-internal"
PG_PASSWORD = "pg-rot@te/me:%20+x"
JIRA_TOKEN = "ATATT-rotation-SECRET"
S3_SECRET_KEY, S3_SESSION = "s3-rotation/SECRET+key=", "s3-rotation-session-TOKEN"


@pytest.fixture
def jira_uri() -> Iterator[str]:
    site = FakeJira("bot@example.com", JIRA_TOKEN)
    site.fields = [system_field("summary", "Summary", "string"), system_field("updated", "Updated", "datetime")]
    with serving(site.app) as uri:
        yield uri


def key() -> str:
    return Fernet.generate_key().decode()


@asynccontextmanager
async def connector(db_url: str, secret_key: str, previous: list[str] | None = None
                    ) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=db_url), auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(internal_token=SecretStr(INTERNAL)), bus="memory",
        secret_key=SecretStr(secret_key), previous_secret_keys=[SecretStr(k) for k in previous or []])
    app = build_app([(DEFINITION, settings)], title="connector", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as client:
        yield client


def command_settings(db_url: str, secret_key: str, previous: list[str]) -> ConnectorSettings:
    return ConnectorSettings(database=DatabaseSettings(url=db_url), secret_key=SecretStr(secret_key),
                             previous_secret_keys=[SecretStr(k) for k in previous])


def rotate_keys(db_url: str, secret_key: str, previous: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_")}
    env.update({"TIDEMARK_CONNECTOR__DATABASE__URL": db_url, "TIDEMARK_CONNECTOR__SECRET_KEY": secret_key,
                "TIDEMARK_CONNECTOR__PREVIOUS_SECRET_KEYS": json.dumps(previous)})
    code = "import sys; from tidemark_connector.main import main; sys.argv[0] = 'tidemark-connector-svc'; main()"
    return subprocess.run([sys.executable, "-c", code, "rotate-keys"], env=env, capture_output=True, text=True,
                          timeout=120)


async def stored(db_url: str) -> dict[uuid.UUID, tuple[str, datetime]]:
    """Each connection's secrets token and updated_at, straight from the database."""
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, secrets, updated_at FROM connections"))).all()
    finally:
        await engine.dispose()
    return {uuid.UUID(str(r[0])): (r[1], r[2]) for r in rows}


async def all_under(db_url: str, secret_key: str) -> bool:
    box = SecretBox(SecretStr(secret_key))
    return all(box.is_current(token) for token, _ in (await stored(db_url)).values())


async def test_rotating_twice_keeps_every_secret_and_the_old_keys_can_go(
        pg_database: Callable[[], str], password_server: PasswordServer, moto_endpoint: str, s3_bucket: str,
        jira_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = pg_database()
    role = f"rot_{uuid.uuid4().hex[:10]}"
    password_server.database_with_owner(role, PG_PASSWORD)
    configs: dict[str, tuple[str, dict[str, Any]]] = {
        "pg": ("postgres", {"host": "127.0.0.1", "port": password_server.port, "user": role, "database": role,
                            "password": PG_PASSWORD}),
        "jira": ("jira", {"base_url": jira_uri, "email": "bot@example.com", "api_token": JIRA_TOKEN}),
        "s3": ("s3", {"bucket": s3_bucket, "endpoint": moto_endpoint, "access_key_id": "rotation-key-id",
                      "secret_access_key": S3_SECRET_KEY, "session_token": S3_SESSION,
                      "streams": [{"name": "orders", "glob": "orders/*.csv", "format": "csv"}]}),
    }
    k1, k2, k3 = key(), key(), key()
    ids: dict[str, str] = {}
    async with connector(db_url, k1) as client:
        for name, (kind, config) in configs.items():
            created = await client.post("/v1/connections", json={"name": name, "type": kind, "config": config})
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
    before = await stored(db_url)
    assert await all_under(db_url, k1)

    # k1 → k2 with the command; a second run finds nothing left to do.
    first = rotate_keys(db_url, k2, [k1])
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 connections: 3 re-encrypted with secret_key" in first.stdout
    assert await all_under(db_url, k2)
    # The same command in-process (no second interpreter start): nothing left to do the second time; and
    # without a key that reads them, it says so and fails.
    await main.rotate_keys(command_settings(db_url, k2, [k1]))
    assert "3 connections: 0 re-encrypted with secret_key" in capsys.readouterr().out
    with pytest.raises(SystemExit) as failed:
        await main.rotate_keys(command_settings(db_url, k3, []))
    assert failed.value.code == 1
    lost = capsys.readouterr().out
    assert "3 unreadable with every configured key" in lost
    for secret in (PG_PASSWORD, JIRA_TOKEN, S3_SECRET_KEY, S3_SESSION, k1, k2, k3):
        assert secret not in first.stdout + first.stderr + lost

    # k2 → k3 at start-up, two replicas at once.
    async with AsyncExitStack() as replicas:
        await asyncio.gather(*(replicas.enter_async_context(connector(db_url, k3, [k2])) for _ in range(2)))
        for _ in range(300):
            if await all_under(db_url, k3):
                break
            await asyncio.sleep(0.1)
        assert await all_under(db_url, k3)
    after = await stored(db_url)
    # A rotation is no change of the user's: updated_at stays.
    assert {i: at for i, (_, at) in after.items()} == {i: at for i, (_, at) in before.items()}

    # Only k3 now: every secret reads back, and works against its source.
    async with connector(db_url, k3) as client:
        for name, (kind, config) in configs.items():
            check = (await client.post(f"/v1/connections/{ids[name]}/check")).json()
            assert check["status"] == "succeeded", (name, check)
            worker_view = await client.get(f"/internal/v1/connections/{ids[name]}/config",
                                           headers={"Authorization": f"Bearer {INTERNAL}"})
            assert worker_view.status_code == 200, worker_view.text
            got = worker_view.json()
            assert got["type"] == kind
            secret_fields = {"password", "api_token", "secret_access_key", "session_token"} & set(config)
            assert {k: got["config"][k] for k in secret_fields} == {k: config[k] for k in secret_fields}
    # And the old keys truly no longer read them (the rotation moved every secret).
    async with connector(db_url, k1, [k2]) as client:
        response = await client.get(f"/internal/v1/connections/{ids['pg']}/config",
                                    headers={"Authorization": f"Bearer {INTERNAL}"})
        assert response.status_code == 422


class SaveDuringRotation(SecretBox):
    """Between the rotation's read of a row and its write, another replica saves that connection anew."""

    def __init__(self, new: str, old: str, db_url: str) -> None:
        super().__init__(SecretStr(new), [SecretStr(old)])
        self.saved_meanwhile = SecretBox(SecretStr(new)).encrypt({"password": "changed-meanwhile"})
        self.conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.rotations = 0

    def rotate(self, token: str) -> str:
        self.rotations += 1
        if self.rotations == 1:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute("UPDATE connections SET secrets = %s", [self.saved_meanwhile])
        return super().rotate(token)


async def test_a_connection_saved_during_rotation_is_never_overwritten(pg_database: Callable[[], str]) -> None:
    db_url = pg_database()
    k1, k2 = key(), key()
    async with connector(db_url, k1) as client:
        created = await client.post("/v1/connections", json={"name": "pg", "type": "postgres", "config": {
            "host": "db.example.com", "user": "app", "database": "shop", "password": "before-rotation"}})
        assert created.status_code == 201, created.text
    box = SaveDuringRotation(k2, k1, db_url)
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        report = await rotate_secrets(session_factory(engine), box)
    finally:
        await engine.dispose()
    # The stale re-encryption lost its compare-and-swap; read again, the row was already under k2.
    assert (report.connections, report.reencrypted, report.complete) == (1, 0, True)
    assert box.rotations == 1
    [(token, _)] = (await stored(db_url)).values()
    assert SecretBox(SecretStr(k2)).decrypt(token) == {"password": "changed-meanwhile"}
