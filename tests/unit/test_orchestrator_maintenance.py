"""POST /v1/pipelines/{id}/maintenance: a maintenance run goes through the run lifecycle (admission:
never beside another run of the pipeline) and run.requested carries what to do."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.fixtures.pipelines import Pipelines
from tidemark.events import Envelope, RunError, RunFinished, RunRequested, RunStatus, StreamStats, Topic

pytestmark = pytest.mark.unit


async def requested(pipelines: Pipelines, count: int) -> list[RunRequested]:
    for _ in range(100):
        found = [e.payload_as(RunRequested) for e in pipelines.bus.published[Topic.RUNS] if e.type == "run.requested"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} run.requested")


async def test_a_maintenance_run_is_a_run_with_its_request(pipelines: Pipelines) -> None:
    client: httpx.AsyncClient = pipelines.orchestrator
    created = await client.post("/v1/pipelines", json={
        "name": "orders", "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}],
        "destination": {"namespace": "shop"}})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]

    unknown = await client.post(f"/v1/pipelines/{pid}/maintenance", json={"table": "shop.nope"})
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "table"
    bad = await client.post(f"/v1/pipelines/{pid}/maintenance", json={"action": "vacuum"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["action"]

    run = await client.post(f"/v1/pipelines/{pid}/maintenance",
                            json={"table": "shop.orders", "action": "compact", "dry_run": True})
    assert run.status_code == 202, run.text
    assert run.json()["trigger"] == "maintenance"
    [event] = await requested(pipelines, 1)
    assert event.trigger == "maintenance"
    assert event.maintenance is not None
    assert (event.maintenance.table, event.maintenance.action, event.maintenance.dry_run) == (
        "shop.orders", "compact", True)
    assert event.pipeline.maintenance.enabled, "the pipeline's policy travels with the run (defaults on)"

    # Admission: an ingestion run asked for meanwhile waits for the maintenance run to end.
    ingestion = await client.post(f"/v1/pipelines/{pid}/runs")
    assert ingestion.status_code == 202, ingestion.text
    assert ingestion.json()["admitted_at"] is None
    assert ingestion.json()["waiting_reason"] == f"waiting for run {run.json()['run_id']} of this pipeline to end"


async def finish(pipelines: Pipelines, pid: str, run_id: str, status: RunStatus = RunStatus.SUCCEEDED,
                 **stats: int) -> list[dict[str, object]]:
    """Deliver the run's ending (its table left with ``stats`` files); the pipeline's runs after it."""
    streams = [StreamStats(stream="main.orders", table="shop.orders", status="succeeded", **stats)] \
        if status is RunStatus.SUCCEEDED else []
    ended = RunFinished(run_id=uuid.UUID(run_id), pipeline_id=uuid.UUID(pid), status=status, streams=streams,
                        error=None if status is RunStatus.SUCCEEDED else RunError(message="x", kind="config"))
    await pipelines.bus.publish(Topic.RUNS, Envelope.wrap(ended, source="ingest-svc"))
    await pipelines.bus.drain()
    runs: list[dict[str, object]] = (await pipelines.orchestrator.get(f"/v1/pipelines/{pid}/runs")).json()
    return runs


async def test_a_run_that_leaves_many_delete_files_is_followed_by_a_compaction(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = (await client.post("/v1/pipelines", json={
        "name": "auto", "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}],
        "destination": {"namespace": "shop"}, "retries": {"max_attempts": 1}})).json()["id"]
    assert (await client.get(f"/v1/pipelines/{pid}")).json()["maintenance"]["enabled"] is True

    first = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    runs = await finish(pipelines, pid, first, data_files=3, delete_files=2)
    assert [r["trigger"] for r in runs] == ["manual"], "a young pipeline with few files needs nothing"

    second = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    runs = await finish(pipelines, pid, second, data_files=20, delete_files=51)
    assert runs[0]["trigger"] == "maintenance"
    assert runs[0]["status"] == "queued"
    assert runs[0]["admitted_at"] is not None, "the pipeline is idle: it starts at once"
    [event] = [e for e in await requested(pipelines, 3) if str(e.run_id) == runs[0]["run_id"]]
    assert event.maintenance is not None
    assert event.maintenance.action == "compact"

    # The maintenance run's own ending queues nothing more and records no full maintenance (compact only).
    runs = await finish(pipelines, pid, str(runs[0]["run_id"]))
    assert [r["trigger"] for r in runs] == ["maintenance", "manual", "manual"]
    maintained = (await client.get(f"/v1/pipelines/{pid}")).json()["maintained_at"]
    assert maintained is not None, "the first good run started the daily interval"


async def test_maintenance_off_or_a_failed_run_queues_none(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = (await client.post("/v1/pipelines", json={
        "name": "off", "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}],
        "destination": {"namespace": "shop"}, "retries": {"max_attempts": 1},
        "maintenance": {"enabled": False}})).json()["id"]
    run = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    assert [r["trigger"] for r in await finish(pipelines, pid, run, delete_files=500)] == ["manual"]

    patched = await client.patch(f"/v1/pipelines/{pid}", json={"maintenance": {"enabled": True}})
    assert patched.status_code == 200, patched.text
    run = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    runs = await finish(pipelines, pid, run, RunStatus.FAILED)
    assert [r["trigger"] for r in runs] == ["manual", "manual"]
    bad = await client.patch(f"/v1/pipelines/{pid}", json={"maintenance": {"keep_snapshots": 0}})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["maintenance.keep_snapshots"]


async def test_many_big_files_need_no_compaction_but_many_small_ones_do(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = (await client.post("/v1/pipelines", json={
        "name": "big", "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}],
        "destination": {"namespace": "shop"}})).json()["id"]
    run = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    runs = await finish(pipelines, pid, run, data_files=1000, table_bytes=1000 * 128 * 1024 * 1024)
    assert [r["trigger"] for r in runs] == ["manual"], "1,000 files of 128 MB: nothing to compact"
    run = (await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"]
    runs = await finish(pipelines, pid, run, data_files=1000, table_bytes=1000 * 1024 * 1024)
    assert runs[0]["trigger"] == "maintenance", "1,000 files of 1 MB: compaction"
