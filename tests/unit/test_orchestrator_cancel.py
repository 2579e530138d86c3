"""POST /v1/pipelines/{id}/runs/{run_id}/cancel: what a cancel does in each state of the run."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.fixtures.pipelines import Pipelines
from tidemark.events import (
    Envelope,
    EventPayload,
    RunCancelRequested,
    RunFinished,
    RunRequested,
    RunStarted,
    RunStatus,
    Topic,
)

pytestmark = pytest.mark.unit


async def new_pipeline(p: Pipelines, name: str) -> str:
    created = await p.orchestrator.post("/v1/pipelines", json={
        "name": name, "connection_id": p.shop_id, "streams": [{"name": "main.orders"}],
        "destination": {"table_prefix": f"{name}_"}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def trigger(p: Pipelines, pid: str) -> uuid.UUID:
    run = await p.orchestrator.post(f"/v1/pipelines/{pid}/runs")
    assert run.status_code == 202, run.text
    return uuid.UUID(run.json()["run_id"])


async def deliver(p: Pipelines, payload: EventPayload) -> None:
    await p.bus.publish(Topic.RUNS, Envelope.wrap(payload, source="ingest-svc"))
    await p.bus.drain()


async def published(p: Pipelines, kind: type[EventPayload], run_id: uuid.UUID) -> list[Envelope]:
    await p.bus.drain()
    # The relay publishes committed outbox rows; give it a moment.
    for _ in range(100):
        found = [e for e in p.bus.published[Topic.RUNS] if e.type == kind.event_type and e.subject == str(run_id)]
        if found:
            return found
        await asyncio.sleep(0.02)
    return []


async def run_row(client: httpx.AsyncClient, pid: str, run_id: uuid.UUID) -> dict[str, object]:
    rows = (await client.get(f"/v1/pipelines/{pid}/runs")).json()
    [row] = [r for r in rows if r["run_id"] == str(run_id)]
    return dict(row)


async def test_a_queued_run_is_cancelled_at_once_and_frees_the_pipeline(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = await new_pipeline(pipelines, "queued")
    run_id = await trigger(pipelines, pid)

    answer = await client.post(f"/v1/pipelines/{pid}/runs/{run_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"run_id": str(run_id), "pipeline_id": pid, "outcome": "cancelled", "status": "cancelled"}
    row = await run_row(client, pid, run_id)
    assert (row["status"], row["error"]) == ("cancelled", "cancelled by user")
    assert row["finished_at"] is not None
    [finished] = await published(pipelines, RunFinished, run_id)
    event = finished.payload_as(RunFinished)
    assert event.status is RunStatus.CANCELLED
    assert event.error is not None
    assert event.error.message == "cancelled by user"
    # No stop request: nothing was launched that needs stopping.
    assert await published(pipelines, RunCancelRequested, run_id) == []

    # A late start (ingest launched it just before it heard of the cancel) does not resurrect it.
    await deliver(pipelines, RunStarted(run_id=run_id, pipeline_id=uuid.UUID(pid), launcher="local", worker_ref="7"))
    assert (await run_row(client, pid, run_id))["status"] == "cancelled"
    # The pipeline has no active run any more: it takes a new one.
    await trigger(pipelines, pid)


async def test_a_running_run_gets_a_cancel_request_and_ends_with_ingests_answer(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = await new_pipeline(pipelines, "running")
    run_id = await trigger(pipelines, pid)
    await deliver(pipelines, RunStarted(run_id=run_id, pipeline_id=uuid.UUID(pid), launcher="local", worker_ref="7"))

    answer = await client.post(f"/v1/pipelines/{pid}/runs/{run_id}/cancel")
    assert answer.status_code == 202, answer.text
    assert (answer.json()["outcome"], answer.json()["status"]) == ("cancel_requested", "running")
    [requested] = await published(pipelines, RunCancelRequested, run_id)
    assert requested.subject == str(run_id)  # keyed by run id: ordered with the run's other events
    request = requested.payload_as(RunCancelRequested)
    assert (request.pipeline_id, request.reason) == (uuid.UUID(pid), "cancelled by user")
    # Still running until ingest says the worker stopped; the orchestrator ends nothing itself.
    assert (await run_row(client, pid, run_id))["status"] == "running"
    assert await published(pipelines, RunFinished, run_id) == []

    await deliver(pipelines, RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.CANCELLED))
    assert (await run_row(client, pid, run_id))["status"] == "cancelled"
    # A success reported after the cancel ended it (a late event) does not resurrect the run.
    await deliver(pipelines, RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.SUCCEEDED))
    assert (await run_row(client, pid, run_id))["status"] == "cancelled"


async def test_cancelling_a_run_that_ended_is_a_409_naming_its_status(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    pid = await new_pipeline(pipelines, "ended")
    run_id = await trigger(pipelines, pid)
    await deliver(pipelines, RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=RunStatus.SUCCEEDED))

    answer = await client.post(f"/v1/pipelines/{pid}/runs/{run_id}/cancel")
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "already ended: succeeded" in answer.json()["detail"]
    assert (await run_row(client, pid, run_id))["status"] == "succeeded"
    assert await published(pipelines, RunCancelRequested, run_id) == []
    # Cancelled twice: the second finds it ended.
    other = await trigger(pipelines, pid)
    assert (await client.post(f"/v1/pipelines/{pid}/runs/{other}/cancel")).status_code == 200
    again = await client.post(f"/v1/pipelines/{pid}/runs/{other}/cancel")
    assert again.status_code == 409
    assert "already ended: cancelled" in again.json()["detail"]


async def test_an_unknown_run_or_a_run_of_another_pipeline_is_a_404(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    mine, theirs = await new_pipeline(pipelines, "mine"), await new_pipeline(pipelines, "theirs")
    their_run = await trigger(pipelines, theirs)

    wrong = await client.post(f"/v1/pipelines/{mine}/runs/{their_run}/cancel")
    assert wrong.status_code == 404, wrong.text
    assert wrong.headers["content-type"] == "application/problem+json"
    assert (await client.post(f"/v1/pipelines/{mine}/runs/{uuid.uuid4()}/cancel")).status_code == 404
    assert (await client.post(f"/v1/pipelines/{uuid.uuid4()}/runs/{their_run}/cancel")).status_code == 404
    # Their run is untouched.
    assert (await run_row(client, theirs, their_run))["status"] == "queued"


async def test_a_pipelines_timeout_travels_with_each_run_and_can_be_removed(pipelines: Pipelines) -> None:
    client = pipelines.orchestrator
    body = {"name": "limited", "connection_id": pipelines.shop_id, "streams": [{"name": "main.orders"}],
            "timeout_seconds": 600}
    created = await client.post("/v1/pipelines", json=body)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    assert created.json()["timeout_seconds"] == 600
    run_id = await trigger(pipelines, pid)
    [requested] = await published(pipelines, RunRequested, run_id)
    assert requested.payload_as(RunRequested).timeout_seconds == 600

    for bad in (0, -5, 7 * 24 * 3600 + 1, "soon"):
        refused = await client.patch(f"/v1/pipelines/{pid}", json={"timeout_seconds": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["timeout_seconds"]
    cleared = await client.patch(f"/v1/pipelines/{pid}", json={"timeout_seconds": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["timeout_seconds"] is None
    assert (await client.post(f"/v1/pipelines/{pid}/runs/{run_id}/cancel")).status_code == 200
    unlimited = await trigger(pipelines, pid)
    [requested] = await published(pipelines, RunRequested, unlimited)
    assert requested.payload_as(RunRequested).timeout_seconds is None
