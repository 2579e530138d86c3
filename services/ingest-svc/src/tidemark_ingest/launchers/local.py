"""Workers as local subprocesses of the service (embedded mode and single-host installs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import ClassVar

from tidemark.aio import cancel_and_wait
from tidemark.logs import fields, log_context
from tidemark_ingest.launchers.base import ExitCallback, Launcher

log = logging.getLogger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "tidemark_ingest.worker", "run")


class LocalLauncher(Launcher):
    name: ClassVar[str] = "local"

    def __init__(self, env: Mapping[str, str], on_exit: ExitCallback,
                 command: Sequence[str] = WORKER_COMMAND, stop_grace_seconds: float = 10.0) -> None:
        self._env = dict(env)
        self._on_exit = on_exit
        self._command = list(command)
        self._grace = stop_grace_seconds
        self._watchers: set[asyncio.Task[None]] = set()
        self._processes: dict[uuid.UUID, asyncio.subprocess.Process] = {}

    async def launch(self, run_id: uuid.UUID) -> str:
        process = await asyncio.create_subprocess_exec(
            *self._command, str(run_id), env=self._env, stdin=asyncio.subprocess.DEVNULL
        )
        self._processes[run_id] = process
        log.info("worker started", extra=fields(run_id=str(run_id), pid=process.pid))
        task = asyncio.create_task(self._watch(run_id, process), name=f"worker-{run_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return str(process.pid)

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
