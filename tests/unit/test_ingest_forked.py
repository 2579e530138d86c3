"""The local launcher's fork server: each run is forked from a warm process, yet stays its own
process: it sees the environment of its launch, SIGTERM stops it, SIGKILL follows after the grace
period, a crash ends only its own run, and no worker outlives a dead fork server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit import forked_workers
from tests.unit.test_ingest_cancel import deliver, pipeline_of
from tests.unit.test_ingest_supervision import finished_events, queue_run, run_of
from tidemark.bus import MemoryBus
from tidemark.events import RunCancelRequested, RunStatus
from tidemark.service import ServiceRuntime
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest import logic
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.deps import IngestState
from tidemark_ingest.launchers import LocalLauncher
from tidemark_ingest.launchers.forked import FORK_SERVER_GONE, ChildTarget
from tidemark_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

GRACE = 1.0
BEGIN_TIMEOUT = 120  # the first fork server of a session imports the worker's modules first (loaded host)


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=tmp_path, internal_token=SecretStr("internal")),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
        bus="memory", heartbeat_seconds=1, heartbeat_timeout_seconds=30, stop_grace_seconds=GRACE,
    )


@pytest.fixture
async def runtime(settings: IngestSettings) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime(DEFINITION, settings, bus=MemoryBus())
    await rt.migrate()
    yield rt
    await rt.state.launcher.close()
    await rt.engine.dispose()


def use(rt: ServiceRuntime, target: ChildTarget) -> LocalLauncher:
    launcher = LocalLauncher(rt.settings, logic.worker_exited(rt), stop_grace_seconds=GRACE, fork_target=target)
    rt._state = IngestState(launcher=launcher)
    return launcher


async def began(settings: IngestSettings, run_id: uuid.UUID) -> dict[str, Any]:
    """What the forked stand-in reported once it began (its pid, parent and environment)."""
    path = settings.platform.home / f"{run_id}.json"
    deadline = time.monotonic() + BEGIN_TIMEOUT
    while not path.exists():
        assert time.monotonic() < deadline, "the forked worker never began"
        await asyncio.sleep(0.05)
    seen: dict[str, Any] = json.loads(path.read_text())
    return seen


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def gone(pid: int, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_forked_worker_gets_its_launchs_environment_and_its_exit_code_fails_the_run(
    runtime: ServiceRuntime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    launcher = use(runtime, forked_workers.exits_3)
    await launcher.start()  # the fork server starts here, with the environment of this moment
    assert launcher._warming is not None
    await launcher._warming
    # Set after the fork server started: a worker must still see it, as a new process would.
    monkeypatch.setenv("TIDEMARK_TEST_LATE_VARIABLE", "late")
    monkeypatch.setenv("TIDEMARK_INGEST__DATABASE__URL", "sqlite+aiosqlite:///stale.db")  # the spec's wins
    run_id = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 1
    seen = await began(runtime.settings, run_id)
    await launcher.wait_idle()

    env = seen["env"]
    assert env["TIDEMARK_TEST_LATE_VARIABLE"] == "late"
    assert env["TIDEMARK_INGEST__DATABASE__URL"] == runtime.settings.database.url
    assert env["TIDEMARK_INTERNAL_TOKEN"] == "internal"
    assert float(env["TIDEMARK_INGEST__LAUNCHED_AT"]) <= time.time()
    # Forked by the fork server, not by the service.
    assert seen["ppid"] != os.getpid()
    run = await run_of(runtime, run_id)
    assert (run.status, run.error, run.worker_ref) == (RunStatus.FAILED, "worker exited with code 3", str(seen["pid"]))


async def test_a_cancelled_forked_worker_is_stopped_by_sigterm(runtime: ServiceRuntime) -> None:
    launcher = use(runtime, forked_workers.sleeper)
    run_id = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 1
    pid = (await began(runtime.settings, run_id))["pid"]

    started = time.monotonic()
    await deliver(runtime, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(runtime, run_id)))
    assert time.monotonic() - started < GRACE  # SIGTERM ended it; no SIGKILL was needed
    assert not alive(pid)
    run = await run_of(runtime, run_id)
    assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled by user")
    [finished] = await finished_events(runtime)
    assert finished.status is RunStatus.CANCELLED


async def test_a_forked_worker_ignoring_sigterm_is_killed_after_the_grace_period(runtime: ServiceRuntime) -> None:
    launcher = use(runtime, forked_workers.stubborn)
    run_id = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 1
    pid = (await began(runtime.settings, run_id))["pid"]  # its SIGTERM handler is in place

    started = time.monotonic()
    await deliver(runtime, RunCancelRequested(run_id=run_id, pipeline_id=await pipeline_of(runtime, run_id)))
    took = time.monotonic() - started
    assert GRACE <= took < GRACE + 10, took
    assert not alive(pid)
    run = await run_of(runtime, run_id)
    assert (run.status, run.error) == (RunStatus.CANCELLED, "cancelled by user")


async def test_a_crashing_forked_worker_fails_only_its_own_run(runtime: ServiceRuntime) -> None:
    sleeping = use(runtime, forked_workers.sleeper)
    calm = await queue_run(runtime)
    assert await logic.launch_queued(runtime, sleeping) == 1
    calm_pid = (await began(runtime.settings, calm))["pid"]

    crashing = LocalLauncher(runtime.settings, logic.worker_exited(runtime), stop_grace_seconds=GRACE,
                             fork_target=forked_workers.crashes)
    try:
        crashed = await queue_run(runtime)
        assert await logic.launch_queued(runtime, crashing) == 1
        await began(runtime.settings, crashed)
        await crashing.wait_idle()
    finally:
        await crashing.close()

    assert (await run_of(runtime, crashed)).error == "worker was stopped by SIGKILL"
    # The other run's worker, forked from the same server, goes on, and so does launching.
    assert alive(calm_pid)
    assert (await run_of(runtime, calm)).status == RunStatus.STARTING
    after = await queue_run(runtime)
    assert await logic.launch_queued(runtime, sleeping) == 1
    await began(runtime.settings, after)


async def test_no_forked_worker_outlives_its_fork_server_and_the_next_run_gets_a_new_one(
    runtime: ServiceRuntime,
) -> None:
    launcher = use(runtime, forked_workers.sleeper)
    run_id = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 1
    seen = await began(runtime.settings, run_id)

    os.kill(seen["ppid"], signal.SIGKILL)  # the fork server
    await launcher.wait_idle()
    assert await gone(seen["pid"]), "the worker outlived its fork server"
    run = await run_of(runtime, run_id)
    # Said in words, and transient: nothing of the run's own doing, so the orchestrator may retry it.
    assert (run.status, run.error) == (RunStatus.FAILED, FORK_SERVER_GONE)
    [finished] = [e for e in await finished_events(runtime) if e.run_id == run_id]
    assert finished.error is not None
    assert finished.error.kind == "transient"

    again = await queue_run(runtime)
    assert await logic.launch_queued(runtime, launcher) == 1
    assert (await began(runtime.settings, again))["ppid"] != seen["ppid"]
