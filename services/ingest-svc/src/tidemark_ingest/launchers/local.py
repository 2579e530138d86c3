"""Workers as local processes of the service (embedded mode and single-host installs): forked from
a warm fork server (``local_start: forkserver``, the default; see :mod:`.forked`), or each a new
interpreter (``local_start: process``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar, Protocol

from tidemark.aio import cancel_and_wait
from tidemark.logs import fields, log_context
from tidemark_ingest.launchers.base import ExitCallback, Launcher
from tidemark_ingest.launchers.forked import (
    FORK_SERVER_DIED,
    FORK_SERVER_GONE,
    ChildTarget,
    ForkedWorker,
    ForkServer,
    run_worker_child,
)
from tidemark_ingest.launchers.spec import INTERNAL_TOKEN, WorkerSpec, resolve_secret
from tidemark_ingest.metrics import launcher_series_at_zero
from tidemark_ingest.settings import ENV_PREFIX, IngestSettings

log = logging.getLogger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "tidemark_ingest.worker")
"""The worker's entry point as this install runs it: the service's own interpreter, no PATH lookup."""


def worker_environment(settings: IngestSettings, spec: WorkerSpec) -> dict[str, str]:
    """A local worker's environment: this process's, as any child inherits it, with the spec's values and
    its secrets resolved from ``settings``. Inherited values the spec decides are dropped first, so a stale
    one in the parent's environment never wins over the service's own (nor an unset token leaks through)."""
    owned = (f"{ENV_PREFIX}DATABASE__", f"{ENV_PREFIX}LAKEHOUSE__")
    env = {k: v for k, v in os.environ.items() if not k.startswith(owned) and k != INTERNAL_TOKEN}
    env.update(spec.env)
    env.update({ref.name: resolve_secret(settings, ref) for ref in spec.secrets})
    # For the worker's own log: how long it took from here to its first line of code.
    env[f"{ENV_PREFIX}LAUNCHED_AT"] = repr(time.time())
    return env


class _Worker(Protocol):
    """A running worker, as asyncio's subprocess and the fork server's children both are."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


class LocalLauncher(Launcher):
    name: ClassVar[str] = "local"

    def __init__(self, settings: IngestSettings, on_exit: ExitCallback,
                 command: Sequence[str] | None = None, stop_grace_seconds: float = 10.0,
                 fork_target: ChildTarget | None = None) -> None:
        """``command`` starts each worker as that program (a new process; tests give fake workers);
        without one, ``settings.local_start`` decides, and ``fork_target`` replaces the forked
        worker's body (tests)."""
        self._settings = settings
        self._on_exit = on_exit
        self._command = list(command or WORKER_COMMAND)
        self._forks = None
        if command is None and settings.local_start == "forkserver":
            self._forks = ForkServer(fork_target or run_worker_child)
        self._grace = stop_grace_seconds
        self._watchers: set[asyncio.Task[None]] = set()
        self._processes: dict[uuid.UUID, _Worker] = {}
        self._warming: asyncio.Task[None] | None = None
        launcher_series_at_zero(self.name)

    async def start(self) -> None:
        if self._forks is not None:
            # In the background: the service is ready at once; a run launched meanwhile waits for it.
            self._warming = asyncio.create_task(self._warm(self._forks), name="worker-fork-server")

    @staticmethod
    async def _warm(forks: ForkServer) -> None:
        try:
            await forks.warm()
        except Exception:
            log.exception("could not start the worker fork server; the next launch tries again")

    async def launch(self, spec: WorkerSpec) -> str:
        run_id = spec.run_id
        env = worker_environment(self._settings, spec)
        process: _Worker
        if self._forks is not None:
            process = await self._forks.start(env, spec.args, name=f"tidemark-worker-{run_id}")
        else:
            process = await asyncio.create_subprocess_exec(
                *self._command, *spec.args, env=env, stdin=asyncio.subprocess.DEVNULL)
        self._processes[run_id] = process
        log.info("worker started", extra=fields(run_id=str(run_id), pid=process.pid,
                                               start="forkserver" if self._forks is not None else "process"))
        task = asyncio.create_task(self._watch(run_id, process), name=f"worker-{run_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return str(process.pid)

    async def stop(self, run_id: uuid.UUID, worker_ref: str | None, grace_seconds: float) -> bool:
        # Only our own children: a process id alone may belong to someone else by now.
        process = self._processes.get(run_id)
        if process is None or process.returncode is not None:
            return False
        watchers = [t for t in self._watchers if t.get_name() == f"worker-{run_id}"]
        log.info("stopping worker", extra=fields(run_id=str(run_id), pid=process.pid, grace_seconds=grace_seconds))
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=grace_seconds)
        except TimeoutError:
            log.warning("worker did not stop within the grace period; killing it",
                        extra=fields(run_id=str(run_id), pid=process.pid))
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        # Its exit recorded too, so the caller sees the run's ending.
        if watchers:
            await asyncio.wait(watchers)
        return True

    async def _watch(self, run_id: uuid.UUID, process: _Worker) -> None:
        code = await process.wait()
        self._processes.pop(run_id, None)
        with log_context(run_id=str(run_id)):
            log.info("worker exited", extra=fields(pid=process.pid, exit_code=code))
            try:
                if isinstance(process, ForkedWorker) and code == FORK_SERVER_DIED:
                    # Its fork server died, and the worker with it (parent-death signal): nothing of the
                    # run's own doing, so a retry (on a new fork server) may well succeed.
                    await self._on_exit(run_id, code, FORK_SERVER_GONE, kind="transient")
                else:
                    await self._on_exit(run_id, code)
            except Exception:
                log.exception("could not record the worker's exit")

    async def wait_idle(self) -> None:
        """Wait until every supervised worker exited and its exit was recorded (tests, shutdown)."""
        while self._watchers:
            await asyncio.gather(*self._watchers, return_exceptions=True)

    async def close(self) -> None:
        """Workers are children of this process: give them a grace period to finish, then stop
        them, so none keeps writing after the service is gone. Their runs are failed as they exit."""
        if not await self._settle(self._grace):
            for process in list(self._processes.values()):
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            if not await self._settle(self._grace):
                for process in list(self._processes.values()):
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await self._settle(self._grace)
        await cancel_and_wait([t for t in (self._warming, *self._watchers) if t is not None])

    async def _settle(self, seconds: float) -> bool:
        """True when every watched worker exited (and its exit was recorded) within ``seconds``."""
        if self._watchers:
            # asyncio.wait, not a timeout around gather: a timeout would cancel the watchers themselves.
            _, pending = await asyncio.wait(set(self._watchers), timeout=seconds)
            return not pending
        return True
