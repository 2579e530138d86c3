"""The safety nets around workers, driven directly: exit watch, launch failure, heartbeat reaper."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tests.fixtures.events import from_newer_producer
from tidemark.bus import MemoryBus, Outbox
from tidemark.db import utcnow
from tidemark.events import (
    DestinationSpec,
    Envelope,
    PartitionField,
    PipelineSpec,
    RunFinished,
    RunRequested,
    RunStatus,
    StreamSpec,
)
from tidemark.ids import new_id
from tidemark.lakehouse import LakehouseSettings
from tidemark.service import EventContext, ServiceRuntime
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest import logic, repository
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.deps import IngestState
from tidemark_ingest.launchers import LocalLauncher, worker_spec
from tidemark_ingest.launchers.local import worker_environment
from tidemark_ingest.models import TABLES, WorkerRun
from tidemark_ingest.settings import IngestSettings
from tidemark_ingest.worker.load import Outcome
from tidemark_ingest.worker.run import SOURCE, _Worker
from tidemark_testing.ports import free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        bus="memory",
        heartbeat_seconds=1,
        heartbeat_timeout_seconds=30,
    )


@pytest.fixture
async def runtime(settings: IngestSettings) -> AsyncIterator[ServiceRuntime]:
    # Migrated but not started: no consumer, launch loop or reaper runs behind the test's back.
    rt = ServiceRuntime(DEFINITION, settings, bus=MemoryBus())
    await rt.migrate()
    # The state setup would make, without the consumers and loops that setup also starts.
    rt._state = IngestState(launcher=LocalLauncher(settings, logic.worker_exited(rt)))
    yield rt
    await rt.engine.dispose()


async def queue_run(rt: ServiceRuntime) -> uuid.UUID:
    event = RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                              streams=[StreamSpec(name="main.orders")], destination=DestinationSpec()),
        trigger="manual",
    )
    async with rt.transaction() as session:
        assert await repository.add_worker_run(session, event, "local")
        assert not await repository.add_worker_run(session, event, "local")
    return event.run_id


async def run_of(rt: ServiceRuntime, run_id: uuid.UUID) -> WorkerRun:
    async with rt.sessions() as session:
        return await repository.require_worker_run(session, run_id)


async def finished_events(rt: ServiceRuntime) -> list[RunFinished]:
    async with rt.sessions() as session:
        raw = (await session.scalars(sa.select(TABLES.outbox.c.envelope).order_by(TABLES.outbox.c.seq))).all()
    envelopes = [Envelope.model_validate_json(r) for r in raw]
    return [e.payload_as(RunFinished) for e in envelopes if e.type == RunFinished.event_type]


async def test_worker_that_exits_without_finishing_fails_the_run(runtime: ServiceRuntime) -> None:
    run_id = await queue_run(runtime)
    launcher = LocalLauncher(runtime.settings, logic.worker_exited(runtime),
                             command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    assert await logic.launch_queued(runtime, launcher) == 1
    # Claimed once: a second pass finds nothing to launch.
    assert await logic.launch_queued(runtime, launcher) == 0
    await launcher.wait_idle()

    run = await run_of(runtime, run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "worker exited with code 3"
    assert run.worker_ref is not None
    [finished] = await finished_events(runtime)
    assert finished.run_id == run_id
    assert finished.error is not None
    assert finished.error.message == "worker exited with code 3"


async def test_a_worker_that_cannot_start_fails_the_run(runtime: ServiceRuntime, tmp_path: Path) -> None:
    run_id = await queue_run(runtime)
    launcher = LocalLauncher(runtime.settings, logic.worker_exited(runtime), command=[str(tmp_path / "no-such-worker")])
    assert await logic.launch_queued(runtime, launcher) == 0
    run = await run_of(runtime, run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("could not start a worker")


async def test_exit_after_the_worker_finished_changes_nothing(runtime: ServiceRuntime) -> None:
    run_id = await queue_run(runtime)
    async with runtime.transaction() as session:
        run = await repository.require_worker_run(session, run_id)
        run.status = RunStatus.SUCCEEDED.value
    await logic.worker_exited(runtime)(run_id, 0)
    assert (await run_of(runtime, run_id)).status == RunStatus.SUCCEEDED
    assert await finished_events(runtime) == []


async def test_reaper_fails_runs_whose_worker_went_silent(runtime: ServiceRuntime) -> None:
    silent, alive = await queue_run(runtime), await queue_run(runtime)
    async with runtime.transaction() as session:
        for run_id, last in ((silent, utcnow() - timedelta(minutes=5)), (alive, utcnow())):
            run = await repository.require_worker_run(session, run_id)
            run.status = RunStatus.RUNNING.value
            run.started_at = run.heartbeat_at = last

    assert await logic.reap_silent(runtime) == 1
    assert (await run_of(runtime, silent)).error == "worker stopped heartbeating"
    assert (await run_of(runtime, alive)).status == RunStatus.RUNNING
    [finished] = await finished_events(runtime)
    assert finished.run_id == silent
    assert finished.status is RunStatus.FAILED


def test_worker_environment_reproduces_the_settings(settings: IngestSettings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    custom = settings.model_copy(update={
        "connector_url": "http://connector:8000",
        "lakehouse": LakehouseSettings(catalog_uri="sqlite:////data/cat.db", warehouse="file:///data/wh",
                                       properties={"s3.endpoint": "http://127.0.0.1:9000"}),
    })
    # A stale value in the parent's environment must not win over the service's own.
    monkeypatch.setenv("TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE", "file:///elsewhere")
    env = worker_environment(custom, worker_spec(custom, new_id()))
    for key in list(os.environ):
        if key.startswith("TIDEMARK_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("TIDEMARK_"):
            monkeypatch.setenv(key, value)
    seen = IngestSettings()
    assert seen.database.url == custom.database.url
    assert seen.connector_url == "http://connector:8000"
    assert seen.lakehouse == custom.lakehouse
    assert seen.platform.internal_token is not None
    assert seen.platform.internal_token.get_secret_value() == "internal"
    assert seen.heartbeat_seconds == custom.heartbeat_seconds


def test_settings_resolve_the_lakehouse_under_home(tmp_path: Path) -> None:
    settings = IngestSettings(platform=PlatformSettings(home=tmp_path))
    assert settings.lakehouse.catalog_uri == f"sqlite:///{tmp_path.resolve()}/catalog.db"
    assert settings.lakehouse.warehouse == f"file://{tmp_path.resolve()}/warehouse"
    with pytest.raises(ValueError, match="synchronous driver"):
        LakehouseSettings(catalog_uri="postgresql+asyncpg://u@h/db")
    with pytest.raises(ValueError, match="heartbeat_timeout_seconds"):
        IngestSettings(heartbeat_seconds=10, heartbeat_timeout_seconds=15)


async def test_stopping_the_service_stops_its_workers_and_fails_their_runs(runtime: ServiceRuntime) -> None:
    run_id = await queue_run(runtime)
    launcher = LocalLauncher(runtime.settings, logic.worker_exited(runtime),
                             command=[sys.executable, "-c", "import time; time.sleep(120)"],
                             stop_grace_seconds=0.5)
    assert await logic.launch_queued(runtime, launcher) == 1
    await launcher.close()
    run = await run_of(runtime, run_id)
    assert run.status == RunStatus.FAILED
    assert run.error == "worker was stopped by SIGTERM"


async def test_a_late_or_repeated_step_never_moves_a_finished_run_backwards(
    runtime: ServiceRuntime, settings: IngestSettings
) -> None:
    run_id = await queue_run(runtime)
    async with runtime.transaction() as session:
        run = await repository.require_worker_run(session, run_id)
        request = RunRequested.model_validate(run.spec)
        run.status = RunStatus.RUNNING.value
        assert await logic.fail_run(runtime, session, run, "worker stopped heartbeating")
    [failed] = await finished_events(runtime)

    # The request redelivered (a new event id): recorded once, so the run is not queued again.
    async with runtime.transaction() as session:
        ctx = EventContext(runtime, session, Envelope.wrap(request, source="orchestrator-svc"))
        await logic.on_run_requested(ctx, request)
    launcher = LocalLauncher(runtime.settings, logic.worker_exited(runtime), command=["false"])
    assert await logic.launch_queued(runtime, launcher) == 0
    # The exit watch and the reaper come too late; the worker that was thought dead reports success.
    assert not await logic.end_if_live(runtime, run_id, "worker exited with code 1")
    worker = _Worker(settings, runtime.sessions, Outbox(TABLES.outbox, source=SOURCE), run_id)
    await worker._finish(request, Outcome(RunStatus.SUCCEEDED))

    run = await run_of(runtime, run_id)
    assert (run.status, run.error) == (RunStatus.FAILED, "worker stopped heartbeating")
    assert await finished_events(runtime) == [failed]


async def test_a_run_requested_from_a_newer_producer_with_fields_added_is_queued_and_loads(
    runtime: ServiceRuntime,
) -> None:
    request = RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                              streams=[StreamSpec(name="main.orders", partition=[PartitionField(column="id")])],
                              destination=DestinationSpec(namespace="shop")),
        trigger="manual",
    )
    envelope = from_newer_producer(request, {
        "priority": "high", "pipeline.owner": "data-team", "pipeline.streams.0.sample_rows": 10,
        "pipeline.streams.0.partition.0.timezone": "UTC", "pipeline.destination.format_version": 3,
    })
    async with runtime.transaction() as session:
        await logic.on_run_requested(EventContext(runtime, session, envelope), envelope.payload_as(RunRequested))
    run = await run_of(runtime, request.run_id)
    assert run.status == RunStatus.QUEUED
    # What the worker reads back is the request as this version understands it.
    assert RunRequested.model_validate(run.spec) == request


async def test_a_worker_whose_run_was_failed_meanwhile_stops_before_committing(
    runtime: ServiceRuntime, settings: IngestSettings
) -> None:
    """The reaper failed a run whose worker was only slow (a stalled machine, a database away longer than the
    heartbeat timeout); the retry will load again, so this worker must not commit what it read."""
    run_id = await queue_run(runtime)
    async with runtime.transaction() as session:
        assert await repository.claim_for_launch(session, run_id)
    worker = _Worker(settings, runtime.sessions, Outbox(TABLES.outbox, source=SOURCE), run_id)
    request = await worker._start()
    assert isinstance(request, RunRequested)
    async with runtime.transaction() as session:
        assert await logic.fail_run(runtime, session, await repository.require_worker_run(session, run_id),
                                    "worker stopped heartbeating")
    beat = asyncio.create_task(worker._heartbeat(request))
    await asyncio.wait_for(beat, timeout=10)  # its next beat finds the run ended
    assert worker.progress.stop_requested, "the load is told to stop at its next batch, before any commit"


async def test_a_worker_records_its_ending_once_its_database_is_back(
    runtime: ServiceRuntime, settings: IngestSettings
) -> None:
    """PostgreSQL restarting just as the worker ends: it waits for the database rather than crashing, so the
    run ends with the worker's own outcome, not "worker exited with code 1"."""
    run_id = await queue_run(runtime)
    async with runtime.transaction() as session:
        assert await repository.claim_for_launch(session, run_id)
    worker = _Worker(settings, runtime.sessions, Outbox(TABLES.outbox, source=SOURCE), run_id)
    request = await worker._start()
    assert isinstance(request, RunRequested)
    away = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    calls = 0

    def sessions() -> Any:
        nonlocal calls
        calls += 1
        return (async_sessionmaker(away) if calls <= 2 else runtime.sessions)()

    worker.sessions = sessions  # type: ignore[assignment]
    try:
        ended = await worker._finish_when_possible(request, Outcome(RunStatus.SUCCEEDED))
    finally:
        await away.dispose()
    assert ended is RunStatus.SUCCEEDED
    assert calls == 3
    assert (await run_of(runtime, run_id)).status == RunStatus.SUCCEEDED
