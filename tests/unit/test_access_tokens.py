"""Tokens through the API (connector-svc owns /v1/tokens; the embedded platform mounts every service):
an admin lists them by name and scope (never a value or digest), creates one (its value shown once) and
revokes it, after which no service accepts it; configured tokens keep working with the scope they state."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tidemark.access import Scope
from tidemark.access.tokens import IssuedToken
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.db import utcnow
from tidemark.errors import ConfigError
from tidemark.events import Envelope, TokenCreated, TokenRevoked
from tidemark.settings import AuthSettings, KafkaSettings, PlatformSettings
from tidemark_cli.embedded import Embedded, create_embedded_app
from tidemark_connector.app import DEFINITION as CONNECTOR
from tidemark_connector.settings import ConnectorSettings
from tidemark_jobs.app import DEFINITION as JOBS
from tidemark_jobs.rebuild import rebuild
from tidemark_jobs.settings import JobsSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit

ADMIN = "tokens-admin-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = Embedded(home=tmp_path, url="http://127.0.0.1:9", api_token=ADMIN, internal_token="tokens-internal",
                   kafka=KafkaSettings())
    async with running(create_embedded_app(env, bus=MemoryBus()), ADMIN) as http:
        yield http


async def test_an_admin_creates_lists_and_revokes_tokens_and_every_service_follows(
        client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/tokens", json={"name": "ci-bot", "scope": "write"})
    assert created.status_code == 201, created.text
    issued = created.json()
    value = issued["token"]
    assert issued["scope"] == "write"
    assert issued["source"] == "api"
    assert len(value) > 40

    listed = await client.get("/v1/tokens")
    assert listed.status_code == 200
    by_name = {t["name"]: t for t in listed.json()}
    assert by_name["platform.api_token"] == {"id": None, "name": "platform.api_token", "scope": "admin",
                                             "source": "config", "created_at": None, "revoked_at": None}
    assert by_name["ci-bot"]["scope"] == "write"
    assert by_name["ci-bot"]["revoked_at"] is None
    digest = hashlib.sha256(value.encode()).hexdigest()
    for secret in (value, digest, ADMIN):
        assert secret not in listed.text
    assert "token" not in by_name["ci-bot"]
    one = await client.get(f"/v1/tokens/{issued['id']}")
    assert one.json()["name"] == "ci-bot"
    assert value not in one.text

    # The new token works on every service's routes at once, within its scope.
    for path in ("/v1/runs", "/v1/connections", "/v1/pipelines", "/v1/downstreams", "/v1/drift", "/v1/workers"):
        assert (await client.get(path, headers=bearer(value))).status_code == 200, path
    made = await client.post("/v1/connections", headers=bearer(value), json={
        "name": "by-ci", "type": "sqlite", "config": {"path": "/nonexistent.db"}})
    assert made.status_code == 201, made.text
    assert (await client.get("/v1/tokens", headers=bearer(value))).status_code == 403

    # One active token per name; scopes are only read, write and admin.
    again = await client.post("/v1/tokens", json={"name": "ci-bot", "scope": "read"})
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "name"
    taken = await client.post("/v1/tokens", json={"name": "platform.api_token", "scope": "read"})
    assert taken.status_code == 409
    bad = await client.post("/v1/tokens", json={"name": "x", "scope": "owner"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "scope"
    nameless = await client.post("/v1/tokens", json={"name": "no spaces", "scope": "read"})
    assert nameless.status_code == 422
    assert nameless.json()["errors"][0]["field"] == "name"

    revoked = await client.delete(f"/v1/tokens/{issued['id']}")
    assert revoked.status_code == 204
    for path in ("/v1/runs", "/v1/connections", "/v1/pipelines"):
        refused = await client.get(path, headers=bearer(value))
        assert refused.status_code == 401, path
    assert (await client.delete(f"/v1/tokens/{issued['id']}")).status_code == 204  # revoking twice is a no-op
    assert (await client.delete(f"/v1/tokens/{uuid.uuid4()}")).status_code == 404
    after = {t["name"]: t for t in (await client.get("/v1/tokens")).json()}
    assert after["ci-bot"]["revoked_at"] is not None
    # A revoked token's name is free again.
    assert (await client.post("/v1/tokens", json={"name": "ci-bot", "scope": "read"})).status_code == 201


async def test_configured_tokens_carry_their_scope_and_bare_ones_stay_admin(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("# the mounted Secret\nviewer:read:view-me\n"
                           f"hashed:write:sha256:{hashlib.sha256(b'hash-me').hexdigest()}\nold-bare-token\n")
    settings = ConnectorSettings(bus="memory", platform=PlatformSettings(home=tmp_path),
                                 auth=AuthSettings(tokens=[SecretStr("ops:admin:ops-token")], tokens_file=tokens_file))
    async with running(build_app([(CONNECTOR, settings)], title="t", bus=MemoryBus(), migrate=True)) as http:
        for token, scope in [("view-me", "read"), ("hash-me", "write"), ("old-bare-token", "admin"),
                             ("ops-token", "admin")]:
            assert (await http.get("/v1/connections", headers=bearer(token))).status_code == 200, token
            # An empty body: 422 once past the scope check, 403 before it.
            create = await http.post("/v1/connections", headers=bearer(token), json={})
            assert create.status_code == (403 if scope == "read" else 422), (token, create.text)
            tokens = await http.get("/v1/tokens", headers=bearer(token))
            assert tokens.status_code == (200 if scope == "admin" else 403), token
        assert (await http.get("/v1/connections", headers=bearer("viewer:read:view-me"))).status_code == 401
        listed = (await http.get("/v1/tokens", headers=bearer("ops-token"))).json()
        assert {(t["name"], t["scope"]) for t in listed} == {
            ("ops", "admin"), ("viewer", "read"), ("hashed", "write"), ("tokens:4", "admin")}


def test_a_configured_entry_with_an_unknown_scope_is_refused_without_showing_the_token(tmp_path: Path) -> None:
    settings = JobsSettings(bus="memory", platform=PlatformSettings(home=tmp_path),
                            auth=AuthSettings(tokens=[SecretStr("bot:owner:very-secret-value")]))
    with pytest.raises(ConfigError, match="unknown scope 'owner'") as caught:
        build_app([(JOBS, settings)], title="t")
    assert "very-secret-value" not in str(caught.value)


def test_the_internal_token_may_not_also_be_an_api_token(tmp_path: Path) -> None:
    settings = JobsSettings(bus="memory", platform=PlatformSettings(
        home=tmp_path, api_token=SecretStr("same"), internal_token=SecretStr("same")))
    with pytest.raises(ConfigError, match="internal_token must differ"):
        build_app([(JOBS, settings)], title="t")


async def test_a_revoked_token_is_refused_by_the_jobs_pages_too(tmp_path: Path) -> None:
    settings = JobsSettings(bus="memory", platform=PlatformSettings(home=tmp_path, api_token=SecretStr(ADMIN)))
    app = build_app([(JOBS, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app) as http:
        token = "tmk_page-token"
        issued = IssuedToken(uuid.uuid4(), "page", Scope.READ, hashlib.sha256(token.encode()).hexdigest(), utcnow(),
                             None)
        app.state.api_tokens.learn(issued)
        signed = await http.post("/jobs/sign-in", data={"token": token, "next": "/jobs"})
        assert signed.status_code == 303
        http.cookies.set("tidemark_token", token)
        assert (await http.get("/jobs")).status_code == 200
        app.state.api_tokens.learn(IssuedToken(issued.token_id, issued.name, issued.scope, issued.digest,
                                               issued.created_at, utcnow()))
        page = await http.get("/jobs")
        assert page.status_code == 401
        assert "Sign in" in page.text
        assert (await http.post("/jobs/sign-in", data={"token": token, "next": "/jobs"})).status_code == 401


async def test_an_edited_tokens_file_takes_effect_without_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("alice:read:alice-token\nbob:write:bob-token\n")
    settings = ConnectorSettings(bus="memory", platform=PlatformSettings(home=tmp_path),
                                 auth=AuthSettings(tokens_file=tokens_file, refresh_seconds=0.1))

    async def status(http: httpx.AsyncClient, token: str) -> int:
        return (await http.get("/v1/connections", headers=bearer(token))).status_code

    async def until(http: httpx.AsyncClient, token: str, wanted: int) -> None:
        for _ in range(200):
            if await status(http, token) == wanted:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{token}: never {wanted}")

    app = build_app([(CONNECTOR, settings)], title="t", bus=MemoryBus(), migrate=True)
    logging.getLogger().addHandler(caplog.handler)  # build_app set the root logger's handlers
    async with running(app) as http:
        assert await status(http, "alice-token") == 200
        # The Secret is edited: alice revoked, carol added (kubelet swaps the whole file).
        replacement = tmp_path / "tokens.new"
        replacement.write_text("bob:write:bob-token\ncarol:read:carol-token\n")
        replacement.replace(tokens_file)
        await until(http, "alice-token", 401)
        await until(http, "carol-token", 200)
        # A broken edit keeps the tokens the file had, and the error does not show the entries.
        tokens_file.write_text("bob:writer:bob-token\n")
        await asyncio.sleep(0.5)
        assert await status(http, "carol-token") == 200
        assert await status(http, "bob-token") == 200
    errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tokens file not reloaded")]
    assert errors
    assert "bob-token" not in "\n".join(errors)


async def test_a_rebuilt_jobs_database_knows_the_tokens_issued_through_the_api(tmp_path: Path) -> None:
    """`tidemark-jobs-svc rebuild` replays the access topic with the runs topic: a service on a fresh
    database still accepts an issued token and refuses a revoked one."""
    def issued(value: str, name: str) -> TokenCreated:
        return TokenCreated(token_id=uuid.uuid4(), name=name, scope="read",
                            digest=hashlib.sha256(value.encode()).hexdigest(), created_at=utcnow())

    kept, gone = issued("tmk_kept", "kept"), issued("tmk_gone", "gone")
    revoked = TokenRevoked(**gone.model_dump(), revoked_at=utcnow())

    async def events() -> AsyncIterator[Envelope]:
        for payload in (kept, gone, revoked):
            yield Envelope.wrap(payload, source="connector-svc")

    settings = JobsSettings(bus="memory", platform=PlatformSettings(home=tmp_path))
    await rebuild(settings, events())
    async with running(build_app([(JOBS, settings)], title="t", bus=MemoryBus())) as http:
        assert (await http.get("/v1/runs", headers=bearer("tmk_kept"))).status_code == 200
        assert (await http.get("/v1/runs", headers=bearer("tmk_gone"))).status_code == 401
