"""What every service's API promises at its boundary (found by fuzzing; see tests/integration/test_api_fuzz.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark.testing.apps import running
from tidemark_orchestrator.app import DEFINITION
from tidemark_orchestrator.settings import OrchestratorSettings

pytestmark = pytest.mark.unit
TOKEN = "unit-token"
PROBLEM = "application/problem+json"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = OrchestratorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/o.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory",
    )
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


def pipeline(**over: object) -> dict[str, object]:
    body: dict[str, object] = {"name": "orders", "connection_id": str(uuid.uuid4()), "streams": [{"name": "s"}]}
    body.update(over)
    return body


async def test_nul_in_a_json_string_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines", json=pipeline(streams=[{"name": "a\x00b"}]))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["streams.0.name"]


async def test_unpaired_surrogate_in_json_is_a_422(client: httpx.AsyncClient) -> None:
    # json.dumps would refuse to write one; JSON itself allows the escape.
    body = json.dumps(pipeline(streams=[{"name": "MARK"}])).replace("MARK", "\\ud800")
    response = await client.post("/v1/pipelines", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "streams.0.name"


async def test_nul_in_a_query_parameter_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/pipelines", params={"q": "a\x00"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "q"


async def test_schedule_longer_than_its_column_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines", json=pipeline(schedule="* " * 65))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "schedule"


async def test_405_allows_every_method_the_path_serves(client: httpx.AsyncClient) -> None:
    response = await client.request("TRACE", f"/v1/pipelines/{uuid.uuid4()}")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


async def test_openapi_documents_problems_and_the_token(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    create = document["paths"]["/v1/pipelines"]["post"]
    assert create["security"] == [{"bearer": []}]
    for status in ("400", "401", "409", "422"):
        assert list(create["responses"][status]["content"]) == [PROBLEM], status
    assert "404" in document["paths"]["/v1/pipelines/{pipeline_id}"]["get"]["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "security" not in document["paths"]["/healthz"]["get"]
