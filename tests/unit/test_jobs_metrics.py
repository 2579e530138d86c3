"""jobs-svc's run metrics: counts by status and trigger, queue depth and the oldest queued run's age,
durations, rows and bytes written, and the time since success per pipeline state class; no label
ever holds a pipeline's name or id."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.jobs import Jobs, Pipeline, jobs_app
from tidemark.events import RunStatus

pytestmark = pytest.mark.unit


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return found if found is not None else 0.0


async def settle(jobs: Jobs, name: str, expected: float, **labels: str) -> None:
    for _ in range(100):
        if value(name, **labels) == expected:
            return
        await asyncio.sleep(0.05)
    assert value(name, **labels) == expected, (name, labels)


async def test_run_metrics_follow_the_read_model(tmp_path: Path) -> None:
    rows_before = value("tidemark_runs_rows_written_total")
    ok_durations = value("tidemark_run_duration_seconds_count", status="succeeded")
    now = datetime.now(UTC)
    async with jobs_app(tmp_path, metrics_refresh_seconds=0.05) as jobs:
        healthy, broken = Pipeline("healthy"), Pipeline("broken")
        await healthy.run(jobs, at=now - timedelta(hours=1))
        await broken.run(jobs, at=now - timedelta(hours=5))
        await broken.run(jobs, RunStatus.FAILED, trigger="schedule", at=now - timedelta(hours=2))
        waiting = uuid.uuid4()
        await jobs.deliver(healthy.queued(waiting), at=now - timedelta(minutes=10))

        await settle(jobs, "tidemark_runs", 1, status="failed", trigger="schedule")
        await settle(jobs, "tidemark_runs", 2, status="succeeded", trigger="manual")
        await settle(jobs, "tidemark_runs_queue_depth", 1)
        assert 590 <= value("tidemark_runs_oldest_queued_age_seconds") <= 900
        assert value("tidemark_pipelines", state="failing") == 1
        assert value("tidemark_pipelines", state="succeeding") == 1
        # broken last succeeded 5 hours ago; healthy an hour ago.
        assert 5 * 3600 - 60 <= value("tidemark_pipelines_since_success_seconds", state="failing") <= 5 * 3600 + 300
        assert value("tidemark_pipelines_since_success_seconds", state="succeeding") < 2 * 3600
        assert value("tidemark_runs_rows_written_total") - rows_before == 30  # three runs of 10 rows
        assert value("tidemark_run_duration_seconds_count", status="succeeded") - ok_durations == 2

        await jobs.deliver(healthy.requested(waiting), healthy.started(waiting), healthy.finished(waiting))
        await settle(jobs, "tidemark_runs_queue_depth", 0)
        assert value("tidemark_runs_oldest_queued_age_seconds") == 0

        scraped = (await jobs.client.get("/metrics")).text
    names = {healthy.name, broken.name, str(healthy.pipeline_id), str(broken.pipeline_id), str(waiting)}
    for family in text_string_to_metric_families(scraped):
        if family.name.startswith(("tidemark_runs", "tidemark_run_", "tidemark_pipelines")):
            for sample in family.samples:
                assert not names & set(sample.labels.values()), sample
