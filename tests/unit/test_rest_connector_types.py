"""The REST connector types through connector-svc's API: listed with their JSON Schema configs
(secrets write-only), created with secrets kept out of every answer, checked and discovered
against a fake vendor on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import running
from tidemark_testing.fake_vendors.jira import FakeJira, custom_field, system_field
from tidemark_testing.fake_vendors.salesforce import STANDARD, FakeSalesforce
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
JIRA_TOKEN = "ATATT-unit-SECRET"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=tmp_path / "home", internal_token=SecretStr("internal")),
        bus="memory", secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


@pytest.fixture
def jira() -> Iterator[tuple[FakeJira, str]]:
    fake = FakeJira("bot@example.com", JIRA_TOKEN)
    fake.fields = [system_field("summary", "Summary", "string"), system_field("updated", "Updated", "datetime"),
                   custom_field(10016, "Story Points", "number")]
    with serving(fake.app) as uri:
        yield fake, uri


async def test_rest_types_are_listed_with_write_only_secrets(client: httpx.AsyncClient) -> None:
    types = {t["type"]: t for t in (await client.get("/v1/connector-types")).json()}
    expected = {"hubspot": ["access_token"], "jira": ["api_token"], "salesforce": ["client_secret", "refresh_token"]}
    for name, secrets in expected.items():
        assert types[name]["secret_fields"] == secrets
        props = types[name]["config_schema"]["properties"]
        for secret in secrets:
            writes = [props[secret], *props[secret].get("anyOf", [])]
            assert any(p.get("writeOnly") for p in writes), (name, secret, props[secret])
        assert "requests_per_second" in props
        assert "timeout_seconds" in props


async def test_a_jira_connection_checks_and_discovers_through_the_api(
    client: httpx.AsyncClient, jira: tuple[FakeJira, str]
) -> None:
    body = {"name": "jira", "type": "jira",
            "config": {"base_url": jira[1], "email": "bot@example.com", "api_token": JIRA_TOKEN}}
    created = await client.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    assert JIRA_TOKEN not in created.text
    cid = created.json()["id"]
    assert (await client.post(f"/v1/connections/{cid}/check")).json() == {"status": "succeeded"}
    discovered = (await client.post(f"/v1/connections/{cid}/discover")).json()
    issues = next(s for s in discovered["streams"] if s["name"] == "issues")
    assert [c["name"] for c in issues["columns"]] == ["id", "key", "summary", "updated", "Story Points"]


async def test_a_refused_token_fails_the_check_with_what_to_do(
    client: httpx.AsyncClient, jira: tuple[FakeJira, str]
) -> None:
    body = {"name": "jira", "type": "jira",
            "config": {"base_url": jira[1], "email": "bot@example.com", "api_token": "ATATT-wrong"}}
    cid = (await client.post("/v1/connections", json=body)).json()["id"]
    check = (await client.post(f"/v1/connections/{cid}/check")).json()
    assert (check["status"], check["kind"]) == ("failed", "config")
    assert "Jira rejected the connection's credentials" in check["message"]
    assert "https://id.atlassian.com/manage-profile/security/api-tokens" in check["message"]
    assert "ATATT-wrong" not in check["message"]


async def test_a_bad_rest_config_is_refused_field_by_field(client: httpx.AsyncClient) -> None:
    body = {"name": "hs", "type": "hubspot", "config": {"associations": ["contacts-companies"], "colour": "x"}}
    refused = await client.post("/v1/connections", json=body)
    assert refused.status_code == 422
    fields = {e["field"] for e in refused.json()["errors"]}
    assert {"config.access_token", "config.associations", "config.colour"} <= fields


async def test_a_salesforce_connection_gets_its_instance_from_the_token_through_the_api(
    client: httpx.AsyncClient,
) -> None:
    fake = FakeSalesforce("3MVG9-client", "sf-SECRET", "5Aep-REFRESH")
    fake.objects = {"Account": list(STANDARD)}
    with serving(fake.app) as uri:
        fake.uri = uri
        config = {"login_url": uri, "client_id": "3MVG9-client", "client_secret": "sf-SECRET",
                  "refresh_token": "5Aep-REFRESH", "objects": ["Account"]}
        created = await client.post("/v1/connections", json={"name": "sf", "type": "salesforce", "config": config})
        assert created.status_code == 201, created.text
        assert "sf-SECRET" not in created.text
        assert "5Aep-REFRESH" not in created.text
        cid = created.json()["id"]
        assert (await client.post(f"/v1/connections/{cid}/check")).json() == {"status": "succeeded"}
        discovered = (await client.post(f"/v1/connections/{cid}/discover")).json()
        assert [c["name"] for c in discovered["streams"][0]["columns"]] == ["Id", "Name", "SystemModstamp"]
        fake.revoked = True
        fake.tokens.clear()  # the issued token is gone too: the next check must refresh
        check = (await client.post(f"/v1/connections/{cid}/check")).json()
        assert (check["status"], check["kind"]) == ("failed", "config")
        assert "refresh token was revoked or has expired" in check["message"]
        assert "5Aep-REFRESH" not in check["message"]
