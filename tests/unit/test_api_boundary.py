"""What every service's API promises at its boundary (found by fuzzing; see tests/integration/test_api_fuzz.py)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark_connector.app import DEFINITION as CONNECTOR
from tidemark_connector.settings import ConnectorSettings
from tidemark_orchestrator.app import DEFINITION
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_testing.apps import running

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
        # These tests hold bodies to their rules; checks against a source's catalog have their own
        # (tests/unit/test_pipeline_checks.py), so pipelines here are saved unvalidated.
        c.params = httpx.QueryParams({"validate": "false"})
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


async def test_schedule_longer_than_its_limit_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines", json=pipeline(schedule={"cron": "* " * 65}))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "schedule.cron"


async def test_more_streams_than_a_pipeline_may_have_is_a_422(client: httpx.AsyncClient) -> None:
    # A run's events list every stream: past the limit they would outgrow a Kafka message.
    many = [{"name": f"public.t{i}"} for i in range(1001)]
    for method, path, body in [("POST", "/v1/pipelines", pipeline(streams=many)),
                               ("PATCH", "/v1/pipelines/{id}", {"streams": many})]:
        if "{id}" in path:
            created = await client.post("/v1/pipelines", json=pipeline(streams=many[:1000]))
            assert created.status_code == 201, created.text  # the limit itself is allowed
            path = path.format(id=created.json()["id"])
        refused = await client.request(method, path, json=body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["errors"][0]["field"] == "streams"
        assert "1000" in refused.text


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


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM, response.text
    return [e["field"] for e in response.json()["errors"]]


async def test_rules_across_fields_name_the_exact_field(client: httpx.AsyncClient) -> None:
    streams = [
        {"name": "main.a", "sync_mode": "incremental"},
        {"name": "main.b", "sync_mode": "incremental_append", "primary_key": ["id"]},
        {"name": "main.c", "sync_mode": "incremental", "primary_key": ["id"], "cursor_field": "ts"},
        {"name": "main.a"},
    ]
    response = await client.post("/v1/pipelines", json=pipeline(streams=streams))
    assert response.status_code == 422
    assert fields(response) == [
        "streams.0.primary_key", "streams.0.cursor_field", "streams.1.cursor_field", "streams.3.name"
    ]
    errors = response.json()["errors"]
    assert errors[0]["type"] == "required_by_sync_mode"
    assert "stream 'main.a': incremental needs a primary_key" in errors[0]["message"]
    assert errors[3]["type"] == "duplicate"
    assert "streams.1.cursor_field: stream 'main.b': incremental_append needs a cursor_field" in (
        response.json()["detail"]
    )


async def test_an_update_is_held_to_the_same_rules(client: httpx.AsyncClient) -> None:
    pid = (await client.post("/v1/pipelines", json=pipeline())).json()["id"]
    response = await client.patch(
        f"/v1/pipelines/{pid}", json={"streams": [{"name": "s", "sync_mode": "incremental", "cursor_field": "ts"}]}
    )
    assert response.status_code == 422
    assert fields(response) == ["streams.0.primary_key"]


@pytest.mark.parametrize("name", ["destination", "streams", "status"])
async def test_null_for_a_field_an_update_may_leave_out_is_a_422(client: httpx.AsyncClient, name: str) -> None:
    pid = (await client.post("/v1/pipelines", json=pipeline(schedule={"cron": "0 * * * *"}))).json()["id"]
    response = await client.patch(f"/v1/pipelines/{pid}", json={name: None})
    assert response.status_code == 422
    assert fields(response) == [name]
    assert response.json()["errors"][0]["type"] == "null_not_allowed"
    # Nothing changed; and null stays meaningful where the resource allows it (schedule: manual only).
    cleared = await client.patch(f"/v1/pipelines/{pid}", json={"schedule": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["schedule"] is None
    assert cleared.json()["destination"]["namespace"] == "tidemark"


@pytest.mark.parametrize(
    ("stream", "field"),
    [
        ({"name": ""}, "streams.0.name"),
        ({"name": "s", "primary_key": ["id", ""]}, "streams.0.primary_key.1"),
        ({"name": "s", "columns": [""]}, "streams.0.columns.0"),
        ({"name": "s", "cursor_field": ""}, "streams.0.cursor_field"),
    ],
)
async def test_empty_stream_and_column_names_are_refused(
    client: httpx.AsyncClient, stream: dict[str, object], field: str
) -> None:
    created = await client.post("/v1/pipelines", json=pipeline(streams=[stream]))
    assert created.status_code == 422
    assert fields(created) == [field]
    pid = (await client.post("/v1/pipelines", json=pipeline())).json()["id"]
    updated = await client.patch(f"/v1/pipelines/{pid}", json={"streams": [stream]})
    assert updated.status_code == 422
    assert fields(updated) == [field]


@pytest.mark.parametrize(
    ("destination", "field"),
    [
        ({"namespace": "a.b/../c"}, "destination.namespace"),
        ({"namespace": "My NS"}, "destination.namespace"),
        ({"namespace": "raw..sales"}, "destination.namespace"),
        ({"namespace": "raw."}, "destination.namespace"),
        ({"namespace": "n" * 129}, "destination.namespace"),
        ({"table_prefix": "Src-"}, "destination.table_prefix"),
        ({"table_prefix": "p" * 65}, "destination.table_prefix"),
    ],
)
async def test_destination_names_follow_the_catalog_rules(
    client: httpx.AsyncClient, destination: dict[str, str], field: str
) -> None:
    response = await client.post("/v1/pipelines", json=pipeline(destination=destination))
    assert response.status_code == 422
    assert fields(response) == [field]
    # The message states the rule rather than a regular expression.
    assert "lowercase letters, digits and `_`" in response.json()["errors"][0]["message"]


async def test_nested_namespaces_and_prefixes_that_follow_the_rules_are_kept(client: httpx.AsyncClient) -> None:
    destination = {"kind": "iceberg", "namespace": "raw.sales_2026", "table_prefix": "src_"}
    response = await client.post("/v1/pipelines", json=pipeline(destination=destination))
    assert response.status_code == 201, response.text
    assert response.json()["destination"] == destination


async def test_malformed_json_names_the_body_and_its_line_and_column(client: httpx.AsyncClient) -> None:
    body = b'{\n  "name": "orders",\n  "streams": [}\n}'
    response = await client.post("/v1/pipelines", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/malformed-json")
    assert problem["errors"] == [
        {"field": "body", "message": "Expecting value at line 3, column 15", "type": "json_invalid"}
    ]
    assert "line 3, column 15" in problem["detail"]


async def test_a_json_body_that_is_not_text_is_malformed_json_too(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/pipelines", content=b'{"name":\n "\xff"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-json")
    assert response.json()["errors"] == [
        {"field": "body", "message": "not utf-8 text (invalid start byte) at line 2, column 3", "type": "json_invalid"}
    ]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
async def test_a_body_that_is_not_json_is_a_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    content = json.dumps(pipeline()).encode()
    response = await client.post("/v1/pipelines", content=content, headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/unsupported-media-type")
    assert "application/json" in response.json()["detail"]


async def test_json_media_types_with_parameters_or_a_json_suffix_are_accepted(client: httpx.AsyncClient) -> None:
    content = json.dumps(pipeline()).encode()
    json_utf8 = {"content-type": "application/json; charset=utf-8"}
    created = await client.post("/v1/pipelines", content=content, headers=json_utf8)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    merge_patch = {"content-type": "application/merge-patch+json"}
    patched = await client.patch(f"/v1/pipelines/{pid}", content=b'{"status": "paused"}', headers=merge_patch)
    assert patched.status_code == 200, patched.text
    # An optional body may be left out whatever the Content-Type says.
    resumed = await client.patch(f"/v1/pipelines/{pid}", json={"status": "active"})
    run = await client.post(f"/v1/pipelines/{pid}/runs", headers={"content-type": "text/plain"})
    assert (resumed.status_code, run.status_code) == (200, 202), run.text


async def test_openapi_documents_415_and_update_fields_as_not_nullable(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "415" in document["paths"]["/v1/pipelines"]["post"]["responses"]
    assert "415" not in document["paths"]["/v1/pipelines"]["get"]["responses"]
    update = document["components"]["schemas"]["PipelineUpdate"]["properties"]
    assert "anyOf" not in update["destination"]
    assert "default" not in update["destination"]
    assert update["streams"]["type"] == "array"
    assert {"type": "null"} in update["schedule"]["anyOf"]
    namespace = document["components"]["schemas"]["DestinationSpec"]["properties"]["namespace"]
    assert namespace["pattern"] == r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"


@pytest.fixture
async def connector_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/c.db"),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        bus="memory",
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )
    app = build_app([(CONNECTOR, settings)], title="t", bus=MemoryBus(), migrate=True)
    async with running(app, TOKEN) as c:
        yield c


@pytest.mark.parametrize("name", ["name", "config"])
async def test_null_in_a_connection_update_is_a_422(connector_client: httpx.AsyncClient, name: str) -> None:
    body = {"name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}}
    created = await connector_client.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    response = await connector_client.patch(f"/v1/connections/{created.json()['id']}", json={name: None})
    assert response.status_code == 422
    assert fields(response) == [name]


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_load_every_asset_from_the_service_itself(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page, headers={"Authorization": ""})
    assert response.status_code == 200
    urls = [next(u for u in match if u) for match in ASSET.findall(response.text)]
    assert urls, response.text
    # Nothing from another host: the page works offline and behind a strict firewall.
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    kinds: dict[str, Any] = {}
    for url in urls:
        asset = await client.get(url, headers={"Authorization": ""})
        assert asset.status_code == 200, url
        kinds[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
    assert kinds["js"].startswith(("text/javascript", "application/javascript"))
    if page == "/docs":
        assert kinds["css"].startswith("text/css")
        # No validator badge either: it would send the document to validator.swagger.io.
        assert '"validatorUrl": null' in response.text
    assert "://" not in response.text


async def test_metrics_label_requests_by_route_template(client: httpx.AsyncClient) -> None:
    pid = uuid.uuid4()
    await client.get(f"/v1/pipelines/{pid}")
    await client.get("/v1/pipelines")
    await client.get(f"/v1/pipelines/{pid}/runs")
    await client.get(f"/no/such/{pid}")
    await client.request("BREW", "/v1/pipelines")
    metrics = (await client.get("/metrics")).text
    for route, status in [
        ("/v1/pipelines/{pipeline_id}", "404"),
        ("/v1/pipelines", "200"),
        ("/v1/pipelines/{pipeline_id}/runs", "404"),
        ("unmatched", "404"),
    ]:
        assert f'tidemark_http_requests_total{{method="GET",route="{route}",status="{status}"}}' in metrics, route
    # Raw paths never become label values: their number is unbounded.
    assert str(pid) not in metrics
    assert 'route="other"' not in metrics
    # Nor are invented methods (any token is a valid method): they share one value.
    assert 'method="BREW"' not in metrics
    assert 'tidemark_http_requests_total{method="other",route="/v1/pipelines",status="405"}' in metrics
