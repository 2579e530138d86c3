"""ingest-svc cancelling runs: a queued run never starts, a running worker is stopped (SIGTERM, then
SIGKILL after the grace period) and its run ends ``cancelled``; an ended run keeps its ending."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.unit.test_ingest_supervision import finished_events, queue_run, run_of
from tidemark.bus import MemoryBus, Outbox
from tidemark.db import utcnow
from tidemark.events import Envelope, EventPayload, RunCancelRequested, RunError, RunFinished, RunRequested, RunStatus
from tidemark.service import EventContext, ServiceRuntime
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest import logic, repository
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.deps import IngestState
from tidemark_ingest.launchers import LocalLauncher
from tidemark_ingest.models import TABLES
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.stopping import timeout_reason
from tidemark_ingest.worker.load import Outcome
from tidemark_ingest.worker.run import SOURCE, _Worker

pytestmark = pytest.mark.unit

GRACE = 1.0
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# A worker that ignores SIGTERM (stuck in a read that does not look at the stop flag).
STUBBORN = [sys.executable, "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)"]


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        bus="memory", heartbeat_seconds=1, heartbeat_timeout_seconds=30, stop_grace_seconds=GRACE,
    )


def runtime_with(settings: IngestSettings, command: Sequence[str]) -> ServiceRuntime:
    rt = ServiceRuntime(DEFINITION, settings, bus=MemoryBus())
    # The state setup would make, with a fake worker command, and no consumer or loop running.
    rt._state = IngestState(launcher=LocalLauncher(settings, logic.worker_exited(rt), command=command,
                                                   stop_grace_seconds=settings.stop_grace_seconds))
    return rt


@pytest.fixture
async def sleeper(settings: IngestSettings) -> AsyncIterator[ServiceRuntime]:
    rt = runtime_with(settings, SLEEPER)
    await rt.migrate()
    yield rt
    await rt.state.launcher.close()
    await rt.engine.dispose()


async def deliver(rt: ServiceRuntime, payload: EventPayload) -> None:
    """Apply one event as the consumer would, then wait for any worker stop it started."""
    handlers = {RunCancelRequested: logic.on_run_cancel_requested, RunFinished: logic.on_run_finished}
    async with rt.transaction() as session:
        ctx = EventContext(rt, session, Envelope.wrap(payload, source="orchestrator-svc"))
        await handlers[type(payload)](ctx, payload)  # type: ignore[operator]
    await asyncio.gather(*rt.state.stops)


async def pipeline_of(rt: ServiceRuntime, run_id: uuid.UUID) -> uuid.UUID:
    return (await run_of(rt, run_id)).pipeline_id


async def test_a_running_worker_is_stopped_and_its_run_ends_cancelled(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    assert await logic.launch_queued(rt, rt.state.launcher) == 1
    async with rt.transaction() as session:
        (await repository.require_worker_run(session, run_id)).status = RunStatus.RUNNING.value

    started = time.monotonic()
    await deliver(rt, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id)))
    # SIGTERM ended it at once, well within the grace period.
    assert time.monotonic() - started < GRACE

    run = await run_of(rt, run_id)
    assert (run.status, run.error, run.cancel_reason) == (RunStatus.CANCELLED, "cancelled by user", "cancelled by user")
    [finished] = await finished_events(rt)
    assert finished.status is RunStatus.CANCELLED
    assert finished.error == RunError(message="cancelled by user", kind="terminal")

    # The request again (a retried cancel), then the worker's own late report: nothing changes.
    await deliver(rt, RunCancelRequested(run_id=run_id, pipeline_id=run.pipeline_id))
    request = RunRequested.model_validate(run.spec)
    worker = _Worker(rt.settings, rt.sessions, Outbox(TABLES.outbox, source=SOURCE), run_id)
    assert await worker._finish(request, Outcome(RunStatus.SUCCEEDED)) is None
    assert (await run_of(rt, run_id)).status == RunStatus.CANCELLED
    assert await finished_events(rt) == [finished]


async def test_a_worker_ignoring_sigterm_is_killed_after_the_grace_period(settings: IngestSettings) -> None:
    rt = runtime_with(settings, STUBBORN)
    await rt.migrate()
    try:
        run_id = await queue_run(rt)
        assert await logic.launch_queued(rt, rt.state.launcher) == 1
        # Let it install its SIGTERM handler before it is asked to stop.
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await deliver(rt, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id)))
        took = time.monotonic() - started
        assert GRACE <= took < GRACE + 5, took
        run = await run_of(rt, run_id)
        assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled by user")
        [finished] = await finished_events(rt)
        assert finished.status is RunStatus.CANCELLED
    finally:
        await rt.state.launcher.close()
        await rt.engine.dispose()


async def test_a_queued_run_is_cancelled_at_once_and_never_launched(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    await deliver(rt, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id), reason="no"))
    run = await run_of(rt, run_id)
    assert (run.status, run.error, run.worker_ref) == (RunStatus.CANCELLED, "no", None)
    [finished] = await finished_events(rt)
    assert (finished.status, finished.error) == (RunStatus.CANCELLED, RunError(message="no", kind="terminal"))
    assert await logic.launch_queued(rt, rt.state.launcher) == 0


async def test_the_orchestrator_cancelling_a_queued_run_keeps_it_from_launching(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    cancelled = RunFinished(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id), status=RunStatus.CANCELLED,
                            error=RunError(message="cancelled by user", kind="terminal"))
    await deliver(rt, cancelled)
    run = await run_of(rt, run_id)
    assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled by user")
    # The orchestrator already announced the ending: ingest does not announce it again.
    assert await finished_events(rt) == []
    assert await logic.launch_queued(rt, rt.state.launcher) == 0
    # Nor does the reaper fail it later.
    assert await logic.reap_silent(rt) == 0
    assert (await run_of(rt, run_id)).status == RunStatus.CANCELLED


async def test_the_orchestrator_cancelling_a_run_ingest_already_launched_stops_its_worker(
    sleeper: ServiceRuntime,
) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    assert await logic.launch_queued(rt, rt.state.launcher) == 1
    await deliver(rt, RunFinished(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id),
                                  status=RunStatus.CANCELLED,
                                  error=RunError(message="cancelled by user", kind="terminal")))
    run = await run_of(rt, run_id)
    assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled by user")
    assert not rt.state.launcher._processes  # the worker is gone


async def test_a_cancel_after_the_run_ended_changes_nothing(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    async with rt.transaction() as session:
        (await repository.require_worker_run(session, run_id)).status = RunStatus.SUCCEEDED.value
    await deliver(rt, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(rt, run_id)))
    run = await run_of(rt, run_id)
    assert (run.status, run.cancel_reason) == (RunStatus.SUCCEEDED, None)
    assert await finished_events(rt) == []


async def test_a_stopped_worker_ends_its_run_cancelled_only_when_a_cancel_was_asked(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    outbox = Outbox(TABLES.outbox, source=SOURCE)
    endings = []
    for reason in ("cancelled by user", None):
        run_id = await queue_run(rt)
        async with rt.transaction() as session:
            run = await repository.require_worker_run(session, run_id)
            run.status, run.cancel_reason = RunStatus.RUNNING.value, reason
        request = RunRequested.model_validate(run.spec)
        # What the loading thread returns when SIGTERM stopped it.
        stopped = Outcome(RunStatus.CANCELLED, error=RunError(message="stopped", kind="transient"))
        ended = await _Worker(rt.settings, rt.sessions, outbox, run_id)._finish(request, stopped)
        run = await run_of(rt, run_id)
        endings.append((ended, run.status, run.error))
    assert endings == [
        (RunStatus.CANCELLED, RunStatus.CANCELLED, "cancelled by user"),
        # Stopped for another reason (the service stopping): failed, and a retry may help.
        (RunStatus.FAILED, RunStatus.FAILED, "worker was stopped by SIGTERM"),
    ]
    assert [(e.status, e.error.kind if e.error else None) for e in await finished_events(rt)] == [
        (RunStatus.CANCELLED, "terminal"), (RunStatus.FAILED, "transient")]


async def test_a_run_over_its_pipelines_timeout_is_stopped_and_fails(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    over, within, unlimited = await queue_run(rt), await queue_run(rt), await queue_run(rt)
    assert await logic.launch_queued(rt, rt.state.launcher) == 3
    now = utcnow()
    async with rt.transaction() as session:
        for run_id, limit, ran in ((over, 5, 6), (within, 60, 6), (unlimited, None, 3600)):
            run = await repository.require_worker_run(session, run_id)
            run.spec = {**run.spec, "timeout_seconds": limit}
            run.status, run.started_at = RunStatus.RUNNING.value, now - timedelta(seconds=ran)

    assert await logic.stop_overdue(rt) == 1
    await asyncio.gather(*rt.state.stops)
    run = await run_of(rt, over)
    assert run.status == RunStatus.FAILED
    assert run.error == "timeout: still running after the pipeline's timeout_seconds (5s)"
    [finished] = await finished_events(rt)
    assert (finished.run_id, finished.status) == (over, RunStatus.FAILED)
    assert finished.error == RunError(message=run.error, kind="transient")
    for run_id in (within, unlimited):
        assert (await run_of(rt, run_id)).status == RunStatus.RUNNING
    assert set(rt.state.launcher._processes) == {within, unlimited}
    # Checked again, nothing more to stop.
    assert await logic.stop_overdue(rt) == 0


async def test_a_worker_stopped_by_its_timeout_fails_its_run(sleeper: ServiceRuntime) -> None:
    rt = sleeper
    run_id = await queue_run(rt)
    async with rt.transaction() as session:
        run = await repository.require_worker_run(session, run_id)
        run.status, run.cancel_reason = RunStatus.RUNNING.value, timeout_reason(5)
    stopped = Outcome(RunStatus.CANCELLED, error=RunError(message="stopped", kind="transient"))
    worker = _Worker(rt.settings, rt.sessions, Outbox(TABLES.outbox, source=SOURCE), run_id)
    assert await worker._finish(RunRequested.model_validate(run.spec), stopped) is RunStatus.FAILED
    assert (await run_of(rt, run_id)).error == timeout_reason(5)
