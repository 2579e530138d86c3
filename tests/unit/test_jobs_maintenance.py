"""jobs-svc shows maintenance runs (trigger `maintenance`): counted in the totals by trigger (the
run_totals rows its migration adds) and with what maintenance did in each table's stats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.jobs import Jobs, Pipeline, jobs_app
from tidemark.events import RunFinished, RunStatus, StreamStats
from tidemark.events.contracts import MaintenanceStats

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[Jobs]:
    async with jobs_app(tmp_path) as app:
        yield app


async def test_a_maintenance_run_is_listed_counted_and_shows_its_work(jobs: Jobs) -> None:
    orders = Pipeline("shop-orders")
    await orders.run(jobs, at=T0)
    run_id = uuid.uuid4()
    done = MaintenanceStats(actions=["compact", "expire", "clean"], data_files_before=120, data_files_after=2,
                            delete_files_before=80, delete_files_after=0, files_rewritten=120,
                            delete_files_folded=80, bytes_rewritten=10_000, snapshots_expired=30,
                            files_deleted=140, bytes_reclaimed=9_000)
    ended = RunFinished(run_id=run_id, pipeline_id=orders.pipeline_id, status=RunStatus.SUCCEEDED, streams=[
        StreamStats(stream="main.orders", table="shop.orders", status="succeeded", maintenance=done)])
    await jobs.deliver(orders.queued(run_id, "maintenance"), orders.requested(run_id, "maintenance"),
                       orders.started(run_id), ended, at=T0)

    listed = await jobs.get("/v1/runs", trigger="maintenance")
    assert [r["run_id"] for r in listed["items"]] == [str(run_id)]
    assert listed["totals"]["succeeded"] == 1, "the totals by trigger know maintenance runs"
    shown = await jobs.get(f"/v1/runs/{run_id}")
    assert shown["trigger"] == "maintenance"
    [stream] = shown["streams"]
    assert stream["maintenance"]["data_files_before"] == 120
    assert stream["maintenance"]["bytes_reclaimed"] == 9_000
