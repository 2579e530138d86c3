"""``tidemark tokens create|list|revoke`` against connector-svc served on a loopback port: the new token is
printed once and works, the list shows names and scopes only, and a revoked token stops working."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, PlatformSettings
from tidemark_cli.main import cli
from tidemark_connector.app import DEFINITION
from tidemark_connector.settings import ConnectorSettings
from tidemark_testing.apps import served

pytestmark = pytest.mark.unit

ADMIN = "cli-admin-token"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    settings = ConnectorSettings(bus="memory", platform=PlatformSettings(home=tmp_path),
                                 auth=AuthSettings(tokens=[SecretStr(f"ops:admin:{ADMIN}")]))
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    with served(app, "connector-svc") as url:
        yield url


def tidemark(url: str, *args: str, token: str = ADMIN, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--url", url, "--token", token, *args])
    assert result.exit_code == code, result.output
    return result


def test_tokens_are_created_listed_and_revoked_from_the_cli(url: str) -> None:
    created = tidemark(url, "tokens", "create", "--name", "dashboards", "--scope", "read")
    value = created.stdout.strip()
    assert value.startswith("tmk_")
    assert "not shown again" in created.stderr
    assert httpx.get(f"{url}/v1/connections", headers={"Authorization": f"Bearer {value}"}).status_code == 200

    listed = tidemark(url, "tokens", "list").stdout
    for shown in ("dashboards", "read", "ops", "admin"):
        assert shown in listed
    assert value not in listed
    as_json = json.loads(tidemark(url, "--json", "tokens", "list").stdout)
    assert {(t["name"], t["scope"], t["source"]) for t in as_json} == {("ops", "admin", "config"),
                                                                       ("dashboards", "read", "api")}
    # A read token may not manage tokens: the CLI says why.
    refused = tidemark(url, "tokens", "list", token=value, code=1)
    assert "admin" in refused.output

    assert "configured token" in tidemark(url, "tokens", "revoke", "ops", "--yes", code=1).output
    assert "Revoked token dashboards." in tidemark(url, "tokens", "revoke", "dashboards", "--yes").stdout
    assert httpx.get(f"{url}/v1/connections", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    assert "No active token" in tidemark(url, "tokens", "revoke", "dashboards", "--yes", code=1).output
