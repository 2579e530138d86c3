"""Workers as local subprocesses of the service (embedded mode and single-host installs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from typing import ClassVar

from tidemark.aio import cancel_and_wait
from tidemark.logs import fields, log_context
from tidemark_ingest.launchers.base import ExitCallback, Launcher
from tidemark_ingest.launchers.spec import INTERNAL_TOKEN, WorkerSpec, resolve_secret
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
    return env


class LocalLauncher(Launcher):
    name: ClassVar[str] = "local"

    def __init__(self, settings: IngestSettings, on_exit: ExitCallback,
                 command: Sequence[str] = WORKER_COMMAND, stop_grace_seconds: float = 10.0) -> None:
        self._settings = settings
        self._on_exit = on_exit
        self._command = list(command)
        self._grace = stop_grace_seconds
        self._watchers: set[asyncio.Task[None]] = set()
        self._processes: dict[uuid.UUID, asyncio.subprocess.Process] = {}

    async def launch(self, spec: WorkerSpec) -> str:
        run_id = spec.run_id
        process = await asyncio.create_subprocess_exec(
            *self._command, *spec.args, env=worker_environment(self._settings, spec), stdin=asyncio.subprocess.DEVNULL
        )
        self._processes[run_id] = process
        log.info("worker started", extra=fields(run_id=str(run_id), pid=process.pid))
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

    async def _watch(self, run_id: uuid.UUID, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self._processes.pop(run_id, None)
        with log_context(run_id=str(run_id)):
            log.info("worker exited", extra=fields(pid=process.pid, exit_code=code))
            try:
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
        await cancel_and_wait(list(self._watchers))

    async def _settle(self, seconds: float) -> bool:
        """True when every watched worker exited (and its exit was recorded) within ``seconds``."""
        if self._watchers:
            # asyncio.wait, not a timeout around gather: a timeout would cancel the watchers themselves.
            _, pending = await asyncio.wait(set(self._watchers), timeout=seconds)
            return not pending
        return True
