"""Pipelines are checked when created or changed: against the connection's discovered catalog
(a real connector-svc app and the bundled SQLite shop), and for tables two streams would share."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.pipelines import API_TOKEN, Pipelines, orchestrator_settings
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark_orchestrator.app import definition
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit


def body(connection_id: str, *streams: dict[str, Any], name: str = "shop", **over: Any) -> dict[str, Any]:
    return {"name": name, "connection_id": connection_id, "streams": list(streams), **over}


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_pipeline_the_catalog_supports_is_created(pipelines: Pipelines) -> None:
    orders = {"name": "main.orders", "sync_mode": "incremental", "cursor_field": "updated_at",
              "primary_key": ["id"], "columns": ["id", "status", "updated_at"],
              "partition": [{"column": "updated_at", "transform": "day"}]}
    created = await pipelines.orchestrator.post("/v1/pipelines", json=body(pipelines.shop_id, orders))
    assert created.status_code == 201, created.text


async def test_unknown_connection_is_422_at_connection_id(pipelines: Pipelines) -> None:
    response = await pipelines.orchestrator.post("/v1/pipelines",
                                                 json=body(str(uuid.uuid4()), {"name": "main.orders"}))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert fields(response) == ["connection_id"]
    assert "does not exist" in response.json()["detail"]


async def test_every_catalog_problem_is_reported_at_its_field(pipelines: Pipelines) -> None:
    streams = [
        {"name": "main.nope"},
        {"name": "main.orders", "sync_mode": "incremental", "cursor_field": "changed",
         "primary_key": ["order_id"], "columns": ["id", "colour", "changed", "order_id", "when"],
         "partition": [{"column": "when", "transform": "day"}]},
        {"name": "main.customers", "sync_mode": "incremental_append", "cursor_field": "email"},
    ]
    response = await pipelines.orchestrator.post("/v1/pipelines", json=body(pipelines.shop_id, *streams))
    assert response.status_code == 422, response.text
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert sorted(errors) == sorted([
        "streams.0.name", "streams.1.columns.1", "streams.1.columns.2", "streams.1.columns.3",
        "streams.1.columns.4", "streams.1.primary_key.0", "streams.1.cursor_field",
        "streams.1.partition.0.column", "streams.2.cursor_field",
    ])
    # Each message says what is wrong and what there is instead.
    assert "main.customers, main.orders" in errors["streams.0.name"]["message"]
    assert "'colour' does not exist" in errors["streams.1.columns.1"]["message"]
    assert "id, customer_id, amount, status, paid, ordered_on, updated_at" in errors["streams.1.columns.1"]["message"]
    assert errors["streams.1.cursor_field"]["type"] == "unknown_cursor_column"
    assert errors["streams.2.cursor_field"]["type"] == "unusable_cursor"
    assert "'email' is string" in errors["streams.2.cursor_field"]["message"]
    assert "usable cursors: id, created_at, updated_at" in errors["streams.2.cursor_field"]["message"]
    assert (await pipelines.orchestrator.get("/v1/pipelines")).json() == []


async def test_key_cursor_and_partition_columns_must_be_selected(pipelines: Pipelines) -> None:
    orders = {"name": "main.orders", "sync_mode": "incremental", "cursor_field": "updated_at",
              "primary_key": ["id"], "columns": ["status"],
              "partition": [{"column": "ordered_on", "transform": "month"}]}
    for validate in ("true", "false"):
        response = await pipelines.orchestrator.post(f"/v1/pipelines?validate={validate}",
                                                     json=body(pipelines.shop_id, orders))
        assert response.status_code == 422
        assert fields(response) == ["streams.0.primary_key.0", "streams.0.cursor_field",
                                    "streams.0.partition.0.column"]
        assert "not among the selected columns (status)" in response.json()["errors"][0]["message"]


async def test_a_long_column_list_is_cut_short(pipelines: Pipelines, tmp_path: Path) -> None:
    import sqlite3

    wide = tmp_path / "wide.sqlite"
    with sqlite3.connect(wide) as db:
        db.execute(f"CREATE TABLE t ({', '.join(f'c{i} INTEGER' for i in range(60))})")
    created = await pipelines.connector.post(
        "/v1/connections", json={"name": "wide", "type": "sqlite", "config": {"path": str(wide)}})
    response = await pipelines.orchestrator.post(
        "/v1/pipelines", json=body(created.json()["id"], {"name": "main.t", "columns": ["nope"]}))
    assert response.status_code == 422
    message = response.json()["errors"][0]["message"]
    assert "c0, c1" in message
    assert "c19 … and 40 more" in message
    assert "c20" not in message


async def test_a_source_that_refuses_is_422_naming_the_flag(pipelines: Pipelines, tmp_path: Path) -> None:
    gone = await pipelines.connector.post(
        "/v1/connections", json={"name": "gone", "type": "sqlite", "config": {"path": str(tmp_path / "no.db")}})
    response = await pipelines.orchestrator.post("/v1/pipelines",
                                                 json=body(gone.json()["id"], {"name": "main.orders"}))
    assert response.status_code == 422
    assert fields(response) == ["connection_id"]
    assert "no SQLite database" in response.json()["detail"]
    assert "?validate=false" in response.json()["detail"]


async def test_a_source_that_cannot_be_reached_is_503_and_validate_false_saves(pipelines: Pipelines) -> None:
    # A PostgreSQL server nobody listens for: the source cannot be reached right now.
    down = await pipelines.connector.post("/v1/connections", json={
        "name": "down", "type": "postgres",
        "config": {"host": "127.0.0.1", "port": free_port(), "database": "app", "user": "app",
                   "tls_mode": "disable", "connect_timeout_seconds": 2}})
    assert down.status_code == 201, down.text
    pipeline = body(down.json()["id"], {"name": "public.orders"})
    refused = await pipelines.orchestrator.post("/v1/pipelines", json=pipeline)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["kind"] == "transient"
    assert "cannot be reached" in refused.json()["detail"]
    assert "?validate=false" in refused.json()["detail"]

    saved = await pipelines.orchestrator.post("/v1/pipelines?validate=false", json=pipeline)
    assert saved.status_code == 201, saved.text
    assert saved.json()["streams"][0]["name"] == "public.orders"


async def test_an_unreachable_connector_service_is_503(tmp_path: Path) -> None:
    settings = orchestrator_settings(tmp_path, connector_url=f"http://127.0.0.1:{free_port()}")
    async with httpx.AsyncClient() as http:
        app = build_app([(definition(http), settings)], title="o", bus=MemoryBus(), migrate=True)
        async with running(app, API_TOKEN) as client:
            pipeline = body(str(uuid.uuid4()), {"name": "main.orders"})
            response = await client.post("/v1/pipelines", json=pipeline)
            assert response.status_code == 503
            assert "connector-svc" in response.json()["detail"]
            assert "?validate=false" in response.json()["detail"]
            assert (await client.post("/v1/pipelines?validate=false", json=pipeline)).status_code == 201


async def test_changed_streams_are_checked_and_a_refused_change_changes_nothing(pipelines: Pipelines) -> None:
    created = await pipelines.orchestrator.post("/v1/pipelines",
                                                json=body(pipelines.shop_id, {"name": "main.orders"}))
    pid = created.json()["id"]
    bad = await pipelines.orchestrator.patch(f"/v1/pipelines/{pid}", json={
        "streams": [{"name": "main.orders"}, {"name": "main.customers", "columns": ["id", "nickname"]}]})
    assert bad.status_code == 422
    assert fields(bad) == ["streams.1.columns.1"]
    assert (await pipelines.orchestrator.get(f"/v1/pipelines/{pid}")).json()["streams"] == created.json()["streams"]

    unchecked = await pipelines.orchestrator.patch(f"/v1/pipelines/{pid}?validate=false", json={
        "streams": [{"name": "main.orders"}, {"name": "main.customers", "columns": ["id", "nickname"]}]})
    assert unchecked.status_code == 200, unchecked.text
    # Pausing needs no source, and checks nothing about the streams.
    paused = await pipelines.orchestrator.patch(f"/v1/pipelines/{pid}", json={"status": "paused"})
    assert paused.status_code == 200


# --------------------------------------------------------------------------- table collisions
# Collision checks need no source: these run with ?validate=false, on names SQLite cannot have.


async def create(client: httpx.AsyncClient, name: str, *streams: str, **destination: str) -> httpx.Response:
    return await client.post("/v1/pipelines?validate=false", json={
        "name": name, "connection_id": str(uuid.uuid4()), "streams": [{"name": s} for s in streams],
        "destination": {"namespace": "lake", **destination}})


async def test_same_table_name_in_two_schemas_is_two_tables(pipelines: Pipelines) -> None:
    response = await create(pipelines.orchestrator, "two-schemas", "public.y", "sales.y")
    assert response.status_code == 201, response.text


async def test_two_streams_of_one_pipeline_on_one_table_are_refused(pipelines: Pipelines) -> None:
    response = await create(pipelines.orchestrator, "clash", "public.y", "main.y")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "streams.1.name"
    assert error["type"] == "table_collision"
    assert "'main.y'" in error["message"]
    assert "'public.y'" in error["message"]
    assert "lake.y" in error["message"]
    assert (await pipelines.orchestrator.get("/v1/pipelines")).json() == []


async def test_a_table_another_pipeline_writes_is_refused(pipelines: Pipelines) -> None:
    assert (await create(pipelines.orchestrator, "first", "sales.orders")).status_code == 201
    second = await create(pipelines.orchestrator, "second", "public.customers", "sales.orders")
    assert second.status_code == 409
    [error] = second.json()["errors"]
    assert error["field"] == "streams.1.name"
    assert "pipeline 'first'" in error["message"]
    assert "lake.sales__orders" in error["message"]
    # Elsewhere the same stream is fine: another namespace, another prefix, another destination kind.
    assert (await create(pipelines.orchestrator, "other-ns", "sales.orders", namespace="lake2")).status_code == 201
    assert (await create(pipelines.orchestrator, "prefixed", "sales.orders", table_prefix="b_")).status_code == 201
    assert (await create(pipelines.orchestrator, "parquet", "sales.orders", kind="parquet")).status_code == 201


async def test_a_change_that_collides_is_refused_and_changes_nothing(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    assert (await create(client, "first", "sales.orders")).status_code == 201
    second = await create(client, "second", "sales.orders", namespace="elsewhere")
    pid = second.json()["id"]

    moved = await client.patch(f"/v1/pipelines/{pid}?validate=false", json={"destination": {"namespace": "lake"}})
    assert moved.status_code == 409
    assert fields(moved) == ["streams.0.name"]
    added = await client.patch(f"/v1/pipelines/{pid}?validate=false",
                               json={"streams": [{"name": "public.orders"}, {"name": "main.orders"}]})
    assert added.status_code == 409
    assert fields(added) == ["streams.1.name"]
    assert (await client.get(f"/v1/pipelines/{pid}")).json() == second.json()

    # A pipeline never collides with itself.
    same = await client.patch(f"/v1/pipelines/{pid}", json={"destination": {"namespace": "elsewhere"}})
    assert same.status_code == 200, same.text


async def test_collisions_are_refused_with_validated_streams_too(pipelines: Pipelines) -> None:
    first = await pipelines.orchestrator.post("/v1/pipelines",
                                              json=body(pipelines.shop_id, {"name": "main.orders"}, name="a"))
    assert first.status_code == 201, first.text
    second = await pipelines.orchestrator.post("/v1/pipelines",
                                               json=body(pipelines.shop_id, {"name": "main.orders"}, name="b"))
    assert second.status_code == 409
    assert "pipeline 'a'" in second.json()["detail"]


async def test_a_column_or_key_listed_twice_is_refused(pipelines: Pipelines) -> None:
    orders = {"name": "main.orders", "sync_mode": "incremental", "cursor_field": "updated_at",
              "primary_key": ["id", "id"], "columns": ["id", "updated_at", "id"]}
    response = await pipelines.orchestrator.post("/v1/pipelines?validate=false",
                                                 json=body(pipelines.shop_id, orders))
    assert response.status_code == 422
    assert fields(response) == ["streams.0.columns.2", "streams.0.primary_key.1"]


async def test_concurrent_creates_cannot_both_claim_a_table(pipelines: Pipelines) -> None:
    answers = await asyncio.gather(*(create(pipelines.orchestrator, f"racer-{i}", "sales.orders")
                                     for i in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
