from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.events import from_newer_producer
from tests.fixtures.pipelines import Pipelines
from tidemark.bus import MemoryBus
from tidemark.events import (
    Envelope,
    EventPayload,
    RunError,
    RunFinished,
    RunRequested,
    RunStarted,
    RunStatus,
    StreamStats,
    Topic,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def client(pipelines: Pipelines) -> httpx.AsyncClient:
    return pipelines.orchestrator


@pytest.fixture
def bus(pipelines: Pipelines) -> MemoryBus:
    return pipelines.bus


@pytest.fixture
def pipeline_body(pipelines: Pipelines) -> Callable[..., dict[str, object]]:
    """A pipeline of the bundled shop's orders, on a real connection (pipelines are checked against it)."""

    def make(**over: object) -> dict[str, object]:
        body: dict[str, object] = {
            "name": "orders",
            "connection_id": pipelines.shop_id,
            "streams": [{"name": "main.orders"}],
        }
        body.update(over)
        return body

    return make


async def test_trigger_run_emits_run_requested_once_committed(
    client: httpx.AsyncClient, bus: MemoryBus, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    created = await client.post("/v1/pipelines", json=pipeline_body())
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    run = await client.post(f"/v1/pipelines/{pid}/runs")
    assert run.status_code == 202, run.text
    assert run.json()["status"] == "queued"
    assert run.json()["admitted_at"] is not None
    # A second trigger while the first is active waits for it (overlap: queue) ...
    second = await client.post(f"/v1/pipelines/{pid}/runs")
    assert second.status_code == 202, second.text
    assert second.json()["admitted_at"] is None
    assert second.json()["waiting_reason"] == f"waiting for run {run.json()['run_id']} of this pipeline to end"
    # ... and a third is refused: one run waits at most.
    again = await client.post(f"/v1/pipelines/{pid}/runs")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    # The relay publishes the outbox rows: both runs queued, only the first sent to the workers.
    for _ in range(50):
        if len(bus.published[Topic.RUNS]) >= 4:
            break
        await asyncio.sleep(0.05)
    types = [(e.type, e.subject) for e in bus.published[Topic.RUNS]]
    first_id, second_id = run.json()["run_id"], second.json()["run_id"]
    assert types == [("run.queued", first_id), ("run.requested", first_id), ("run.queued", second_id),
                     ("run.waiting", second_id)]
    event = bus.published[Topic.RUNS][1].payload_as(RunRequested)
    assert event.pipeline.name == "orders"


async def test_incremental_without_key_is_422_naming_the_stream(
    client: httpx.AsyncClient, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    body = pipeline_body(streams=[{"name": "main.events", "sync_mode": "incremental", "cursor_field": "ts"}])
    response = await client.post("/v1/pipelines", json=body)
    assert response.status_code == 422
    assert "main.events" in response.json()["detail"]
    assert [e["field"] for e in response.json()["errors"]] == ["streams.0.primary_key"]


async def test_patch_destination_null_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    # Found by fuzzing the embedded platform: this was a 500 (the change was rolled back).
    pid = (await client.post("/v1/pipelines", json=pipeline_body(name="keep"))).json()["id"]
    response = await client.patch(f"/v1/pipelines/{pid}", json={"destination": None})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["destination"]
    empty_name = await client.patch(f"/v1/pipelines/{pid}", json={"streams": [{"name": ""}]})
    assert empty_name.status_code == 422
    assert [e["field"] for e in empty_name.json()["errors"]] == ["streams.0.name"]
    stored = (await client.get(f"/v1/pipelines/{pid}")).json()
    assert stored["destination"] == {"kind": "iceberg", "namespace": "tidemark", "table_prefix": ""}
    assert stored["streams"][0]["name"] == "main.orders"


async def test_unknown_field_malformed_json_and_missing_token(
    client: httpx.AsyncClient, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    unknown = await client.post("/v1/pipelines", json=pipeline_body(colour="blue"))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "colour"
    bad = await client.post("/v1/pipelines", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/malformed-json")
    anon = await client.get("/v1/pipelines", headers={"Authorization": ""})
    assert anon.status_code == 401
    assert anon.headers["content-type"] == "application/problem+json"


async def test_resync_names_pipeline_streams_and_travels_in_the_event(
    client: httpx.AsyncClient, bus: MemoryBus, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    pid = (await client.post("/v1/pipelines", json=pipeline_body(name="resync"))).json()["id"]
    unknown = await client.post(f"/v1/pipelines/{pid}/runs", json={"resync": ["main.nope"]})
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "resync"
    assert "main.nope" in unknown.json()["detail"]
    accepted = await client.post(f"/v1/pipelines/{pid}/runs", json={"resync": ["main.orders"]})
    assert accepted.status_code == 202, accepted.text
    for _ in range(50):
        if len(bus.published[Topic.RUNS]) >= 2:
            break
        await asyncio.sleep(0.05)
    [envelope] = [e for e in bus.published[Topic.RUNS] if e.type == "run.requested"]
    assert envelope.payload_as(RunRequested).resync == ["main.orders"]


async def test_a_late_or_repeated_run_event_never_moves_the_run_backwards(
    client: httpx.AsyncClient, bus: MemoryBus, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    body = pipeline_body(name="late", retries={"max_attempts": 1})
    pid = (await client.post("/v1/pipelines", json=body)).json()["id"]
    run_id = uuid.UUID((await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"])

    async def deliver(payload: EventPayload) -> dict[str, object]:
        await bus.publish(Topic.RUNS, Envelope.wrap(payload, source="ingest-svc"))
        await bus.drain()
        [row] = (await client.get(f"/v1/pipelines/{pid}/runs")).json()
        assert row["run_id"] == str(run_id)
        return dict(row)

    started = RunStarted(run_id=run_id, pipeline_id=uuid.UUID(pid), launcher="local", worker_ref="42")
    first_start = await deliver(started)
    assert first_start["status"] == "running"
    # The same start again (a new event, so the inbox does not catch it) keeps the first start time.
    assert (await deliver(started))["started_at"] == first_start["started_at"]

    failed = RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.FAILED,
                         error=RunError(message="worker stopped heartbeating", kind="terminal"))
    ended = await deliver(failed)
    assert (ended["status"], ended["error"]) == ("failed", "worker stopped heartbeating")
    # A late start and a second, different ending both change nothing: the first ending stands.
    assert await deliver(started) == ended
    assert await deliver(RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.SUCCEEDED)) == ended
    # The run is over, so the pipeline takes a new one.
    assert (await client.post(f"/v1/pipelines/{pid}/runs")).status_code == 202


async def test_a_run_finished_from_a_newer_producer_with_fields_added_is_applied(
    client: httpx.AsyncClient, bus: MemoryBus, pipeline_body: Callable[..., dict[str, object]]
) -> None:
    body = pipeline_body(name="newer", retries={"max_attempts": 1})
    pid = (await client.post("/v1/pipelines", json=body)).json()["id"]
    run_id = uuid.UUID((await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"])
    stats = StreamStats(stream="main.orders", table="tidemark.orders", status="failed",
                        error=RunError(message="gone", kind="transient"))
    finished = RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.FAILED, streams=[stats],
                           error=RunError(message="source went away", kind="transient"))
    await bus.publish(Topic.RUNS, from_newer_producer(finished, {
        "cost_units": 1.5, "streams.0.files_written": 2, "streams.0.error.retry_after_seconds": 30,
        "error.retry_after_seconds": 30,
    }, headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}))
    await bus.drain()
    [row] = (await client.get(f"/v1/pipelines/{pid}/runs")).json()
    assert (row["status"], row["error"]) == ("failed", "source went away")


@pytest.mark.parametrize("where", ["", "streams.0.", "streams.0.partition.0.", "destination."])
async def test_pipeline_bodies_refuse_an_unknown_field_naming_it(
    client: httpx.AsyncClient, pipeline_body: Callable[..., dict[str, object]], where: str
) -> None:
    # Events tolerate fields they do not know; a user's input does not (a typo must not be ignored).
    body: dict[str, object] = pipeline_body(
        streams=[{"name": "main.orders", "partition": [{"column": "order_date"}]}], destination={"kind": "iceberg"},
    )
    target: Any = body
    for part in where.split(".")[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target["sync_mod"] = "full_refresh"
    for method, path in (("POST", "/v1/pipelines"), ("PATCH", f"/v1/pipelines/{uuid.uuid4()}")):
        sent = body if method == "POST" else {k: v for k, v in body.items() if k in ("streams", "destination")}
        if method == "PATCH" and not where:
            sent = {**sent, "sync_mod": "full_refresh"}
        response = await client.request(method, path, json=sent)
        assert response.status_code == 422, (method, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [f"{where}sync_mod"], method
