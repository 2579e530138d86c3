"""Retries, overlap policies, concurrency limits and ``pipeline.changed``, on a real orchestrator app
with a clock the test moves (see ``tests/fixtures/scheduling.py``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.scheduling import Harness, harness, orchestrator_harness
from tidemark.events import (
    Envelope,
    PipelineChanged,
    RetryPolicy,
    RunCancelRequested,
    RunError,
    RunFinished,
    RunQueued,
    RunRequested,
    RunStarted,
    RunStatus,
    RunWaiting,
    ScheduleInfo,
    Topic,
)
from tidemark_orchestrator.models import Run

pytestmark = pytest.mark.unit
__all__ = ["harness"]  # the fixture

TRANSIENT = RunError(message="connection reset by peer", kind="transient")


async def trigger(h: Harness, pid: str, expect: int = 202) -> dict[str, Any]:
    answer = await h.client.post(f"/v1/pipelines/{pid}/runs")
    assert answer.status_code == expect, answer.text
    return dict(answer.json())


async def run(h: Harness, run_id: str | uuid.UUID) -> Run:
    [found] = [r for r in await h.runs_of_all() if str(r.id) == str(run_id)]
    return found


async def requested(h: Harness) -> list[uuid.UUID]:
    return [e.run_id for e in await h.events(RunRequested)]


async def start(h: Harness, run_id: str) -> None:
    started = RunStarted(run_id=uuid.UUID(run_id), pipeline_id=(await run(h, run_id)).pipeline_id,
                         launcher="local", worker_ref="1")
    await h.bus.publish(Topic.RUNS, Envelope.wrap(started, source="ingest-svc"))
    await h.bus.drain()


# --- retries -------------------------------------------------------------------------------------------


async def test_a_transient_failure_is_retried_after_a_backoff_until_the_attempts_run_out(harness: Harness) -> None:
    pid = await harness.create(None, retries={"max_attempts": 3, "initial_delay_seconds": 10,
                                              "max_delay_seconds": 100})
    first = await trigger(harness, pid)
    failed_at = harness.clock()
    await harness.finish(await run(harness, first["run_id"]), RunStatus.FAILED, TRANSIENT)

    [second] = await harness.runs(pid, RunStatus.QUEUED)
    assert (second.trigger, second.attempt, second.retry_of) == ("retry", 2, uuid.UUID(first["run_id"]))
    assert second.scheduled_for is None
    assert second.not_before is not None
    assert timedelta(seconds=10) <= second.not_before - failed_at <= timedelta(seconds=20)  # 10 s + jitter ≤ 10 s
    assert str(second.waiting_reason).startswith("retry backoff: attempt 2")
    [queued] = [e for e in await harness.events(RunQueued) if e.run_id == second.id]
    assert (queued.retry_of, queued.attempt, queued.not_before) == (second.retry_of, 2, second.not_before)
    assert second.id not in await requested(harness)

    harness.clock.now = second.not_before - timedelta(seconds=1)
    await harness.tick()
    assert second.id not in await requested(harness), "admitted before its backoff ran out"
    harness.clock.now = second.not_before
    await harness.tick()
    [sent] = [e for e in await harness.events(RunRequested) if e.run_id == second.id]
    assert (sent.trigger, sent.attempt, sent.retry_of) == ("retry", 2, uuid.UUID(first["run_id"]))

    failed_at = harness.clock()
    await harness.finish(await run(harness, second.id), RunStatus.FAILED, RunError(message="boom", kind="terminal"))
    [third] = await harness.runs(pid, RunStatus.QUEUED)
    assert (third.attempt, third.retry_of) == (3, second.id)
    assert third.not_before is not None
    assert timedelta(seconds=20) <= third.not_before - failed_at <= timedelta(seconds=30)  # doubled

    harness.clock.now = third.not_before
    await harness.tick()
    await harness.finish(await run(harness, third.id), RunStatus.FAILED, TRANSIENT)
    assert await harness.runs(pid, RunStatus.QUEUED) == [], "retried beyond max_attempts"


@pytest.mark.parametrize(("status", "error"), [
    (RunStatus.FAILED, RunError(message="password authentication failed for user shop", kind="config")),
    (RunStatus.CANCELLED, RunError(message="cancelled by user", kind="terminal")),
    (RunStatus.PARTIALLY_SUCCEEDED, TRANSIENT),
])
async def test_config_errors_cancels_and_partial_successes_are_not_retried(
    harness: Harness, status: RunStatus, error: RunError
) -> None:
    pid = await harness.create(None)
    first = await trigger(harness, pid)
    await harness.finish(await run(harness, first["run_id"]), status, error)
    assert await harness.runs(pid, RunStatus.QUEUED) == []


async def test_a_manual_trigger_replaces_a_retry_waiting_for_its_backoff(harness: Harness) -> None:
    pid = await harness.create(None)
    first = await trigger(harness, pid)
    await harness.finish(await run(harness, first["run_id"]), RunStatus.FAILED, TRANSIENT)
    [retry] = await harness.runs(pid, RunStatus.QUEUED)
    manual = await trigger(harness, pid)
    assert manual["admitted_at"] is not None
    replaced = await run(harness, retry.id)
    assert (replaced.status, replaced.error) == ("cancelled", "superseded by a manual run")


async def test_the_retry_policy_is_checked_and_shown_with_its_defaults(harness: Harness) -> None:
    body = {"name": "r", "connection_id": str(uuid.uuid4()), "streams": [{"name": "main.orders"}]}
    bad = await harness.client.post("/v1/pipelines", params={"validate": "false"}, json={
        **body, "retries": {"initial_delay_seconds": 60, "max_delay_seconds": 5}})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["retries.max_delay_seconds"]
    bad = await harness.client.post("/v1/pipelines", params={"validate": "false"}, json={**body, "overlap": "both"})
    assert [e["field"] for e in bad.json()["errors"]] == ["overlap"]
    created = await harness.client.post("/v1/pipelines", params={"validate": "false"}, json=body)
    assert created.json()["retries"] == {"max_attempts": 3, "initial_delay_seconds": 30.0, "max_delay_seconds": 900.0}
    assert created.json()["overlap"] == "queue"


# --- overlap -------------------------------------------------------------------------------------------


async def test_overlap_skip_refuses_a_manual_run_and_skips_a_due_tick(harness: Harness) -> None:
    pid = await harness.create("0 * * * *", overlap="skip")
    first = await trigger(harness, pid)
    refused = await trigger(harness, pid, expect=409)
    assert "overlap: skip" in refused["detail"]
    harness.clock.now = harness.clock.now.replace(minute=0) + timedelta(hours=1, seconds=1)
    outcome = await harness.tick()
    [skipped] = outcome.skipped
    assert skipped.error == f"skipped: run {first['run_id']} of this pipeline was still queued (overlap: skip)"
    assert [e.run_id for e in await harness.events(RunFinished)] == [skipped.id]


async def test_overlap_queue_lets_one_run_wait_for_the_active_one(harness: Harness) -> None:
    pid = await harness.create(None)
    first = await trigger(harness, pid)
    second = await trigger(harness, pid)
    assert second["waiting_reason"] == f"waiting for run {first['run_id']} of this pipeline to end"
    await trigger(harness, pid, expect=409)
    assert await requested(harness) == [uuid.UUID(first["run_id"])]
    await harness.finish(await run(harness, first["run_id"]))
    assert await requested(harness) == [uuid.UUID(first["run_id"]), uuid.UUID(second["run_id"])]


async def test_overlap_cancel_previous_stops_the_running_run_and_starts_once_it_ended(harness: Harness) -> None:
    pid = await harness.create(None, overlap="cancel_previous")
    first = await trigger(harness, pid)
    await start(harness, first["run_id"])
    second = await trigger(harness, pid)
    [cancel] = await harness.events(RunCancelRequested)
    assert str(cancel.run_id) == first["run_id"]
    assert cancel.reason == "superseded by a newer run (overlap: cancel_previous)"
    assert second["admitted_at"] is None, "two runs of one pipeline would run at once"
    await harness.finish(await run(harness, first["run_id"]), RunStatus.CANCELLED)
    assert uuid.UUID(second["run_id"]) in await requested(harness)


# --- concurrency ---------------------------------------------------------------------------------------


async def test_runs_wait_for_a_slot_first_come_first_served_and_say_why(tmp_path: Path) -> None:
    async with orchestrator_harness(tmp_path, max_active_runs=2, max_active_runs_per_connection=1) as h:
        conn_a, conn_b, conn_c = (str(uuid.uuid4()) for _ in range(3))
        a1, a2 = [await h.create(None, connection_id=conn_a) for _ in range(2)]
        b1 = await h.create(None, connection_id=conn_b)
        c1 = await h.create(None, connection_id=conn_c)
        run_a1 = await trigger(h, a1)
        run_a2 = await trigger(h, a2)
        run_b1 = await trigger(h, b1)
        run_c1 = await trigger(h, c1)
        assert [r["admitted_at"] is not None for r in (run_a1, run_a2, run_b1, run_c1)] == [True, False, True, False]
        assert run_a2["waiting_reason"] == (f"waiting for a slot: 1 of 1 runs of connection {conn_a} are active "
                                            "(per-connection limit)")
        assert run_c1["waiting_reason"] == "waiting for a slot: 2 of 2 runs are active (max_active_runs)"
        assert [e.reason for e in await h.events(RunWaiting)] == [run_a2["waiting_reason"], run_c1["waiting_reason"]]

        await h.finish(await run(h, run_a1["run_id"]))  # a2 was first in line and its connection is free now
        assert await requested(h) == [uuid.UUID(r["run_id"]) for r in (run_a1, run_b1, run_a2)]
        assert (await run(h, run_c1["run_id"])).waiting_reason == run_c1["waiting_reason"]
        await h.finish(await run(h, run_b1["run_id"]))
        assert (await requested(h))[-1] == uuid.UUID(run_c1["run_id"])


async def test_pausing_cancels_runs_still_waiting_and_keeps_the_one_sent(tmp_path: Path) -> None:
    async with orchestrator_harness(tmp_path, max_active_runs=1) as h:
        busy, paused = await h.create(None), await h.create(None)
        sent = await trigger(h, busy)
        waiting = await trigger(h, paused)
        answer = (await h.client.post(f"/v1/pipelines/{paused}/pause")).json()
        assert [r["run_id"] for r in answer["cancelled"]] == [waiting["run_id"]]
        assert (await run(h, waiting["run_id"])).error == "pipeline paused"
        assert (await h.client.post(f"/v1/pipelines/{busy}/pause")).json()["active_run"]["run_id"] == sent["run_id"]


# --- pipeline.changed ----------------------------------------------------------------------------------


async def test_every_change_of_a_pipeline_is_announced_with_its_definition(harness: Harness) -> None:
    upstream = await harness.create(None)
    pid = await harness.create("0 2 * * *", "Europe/Berlin", upstreams=[upstream], timeout_seconds=600)
    assert (await harness.client.patch(f"/v1/pipelines/{pid}", json={"overlap": "skip"})).status_code == 200
    await harness.client.post(f"/v1/pipelines/{pid}/pause")
    await harness.client.post(f"/v1/pipelines/{pid}/resume")
    assert (await harness.client.delete(f"/v1/pipelines/{pid}")).status_code == 204
    changes = [e for e in await harness.events(PipelineChanged) if str(e.pipeline_id) == pid]
    assert [(c.change, c.status) for c in changes] == [
        ("created", "active"), ("updated", "active"), ("paused", "paused"), ("resumed", "active"),
        ("deleted", "active")]
    created = changes[0]
    assert created.schedule == ScheduleInfo(cron="0 2 * * *", timezone="Europe/Berlin")
    assert created.upstreams == [uuid.UUID(upstream)]
    assert [s.name for s in created.pipeline.streams] == ["main.orders"]
    assert (created.overlap, created.timeout_seconds, changes[1].overlap) == ("queue", 600, "skip")
    assert created.retries == RetryPolicy(max_attempts=3, initial_delay_seconds=30, max_delay_seconds=900)
    assert all(c.topic is Topic.PIPELINES for c in changes)
