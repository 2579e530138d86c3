"""Local workers forked from a warm process: a run starts in milliseconds, still in its own process.

A new interpreter per run spends seconds importing pyarrow, pyiceberg, SQLAlchemy and the drivers
before it reads a row (2.5 to 3.5 s of CPU here; far more on a loaded host), which dominated a small
run's time. The standard library's fork server (``multiprocessing``'s ``forkserver`` start method)
is a clean single-threaded process, started once by the service, that imports the worker's modules
(:mod:`tidemark_ingest.worker.warm`) and then forks one child per run. Each run therefore still has
its own process, memory and exit code: a crash or SIGKILL ends only that child (the fork server
reports its exit status), SIGTERM reaches the worker's own handler exactly as before, and nothing
of the service's process (its threads, sockets, event loop) is inherited, since the fork server
never was the service.

If the fork server itself dies, the next run starts a new one. Its children die with it (Linux's
parent-death signal): their runs fail saying so (multiprocessing reports such a child's status as
255), as transient failures a retry may fix, and none keeps loading a run its service has already failed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.context import ForkServerProcess
from typing import Any

from tidemark.logs import fields

log = logging.getLogger(__name__)

WARM_MODULE = "tidemark_ingest.worker.warm"
FORK_SERVER_DIED = 255  # multiprocessing's status for a child whose fork server could not report its exit
FORK_SERVER_GONE = "the worker's fork server died, and the worker with it; a new one starts with the next run"
_PR_SET_PDEATHSIG = 1

_CONTEXT = multiprocessing.get_context("forkserver")
# Every call into multiprocessing runs on this one thread: starting a process blocks (it talks to the
# fork server) and also polls the other children's exit pipes, which must never race a read of ours.
_EXECUTOR: ThreadPoolExecutor | None = None

ChildTarget = Callable[[dict[str, str], list[str]], None]


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidemark-forkserver")
        atexit.register(_stop_fork_server)
    return _EXECUTOR


def _stop_fork_server() -> None:
    """When the service's process exits, end its fork server (and any child still on it, by the
    parent-death signal) and multiprocessing's resource tracker, and reap them: nothing the service
    started outlives it. Left alone they would end a moment later, on their own, as orphans.
    multiprocessing keeps no public handle on either process, hence its private ``_stop``s."""
    server: Any = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # it would otherwise wait for children that still run
        with contextlib.suppress(Exception):
            server._stop()
    with contextlib.suppress(Exception):
        multiprocessing.resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


def preload_modules() -> list[str]:
    """What the fork server imports before it forks: the worker's modules, and the service's own
    ``__main__`` (by path or by name), which multiprocessing would otherwise import again in every
    child."""
    modules = ["__main__"]
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name and not name.endswith("__main__"):
        modules.append(name)
    modules.append(WARM_MODULE)
    return modules


def run_worker_child(env: dict[str, str], args: list[str]) -> None:
    """A forked worker's body: the worker's main, as ``tidemark-worker ARGS`` would run it."""
    from tidemark_ingest.worker.main import main

    main(args)


def _child(target: ChildTarget, env: dict[str, str], args: list[str]) -> None:
    """What the fork server runs in each child (module-level, so multiprocessing can name it): the
    environment a new process would have had (the fork server's own is from when it started), then
    ``target``."""
    _die_with_parent()
    os.environ.clear()
    os.environ.update(env)
    target(env, args)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when its fork server dies, so no worker outlives the one
    process that can report its exit (elsewhere this is a no-op)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _nothing() -> None:
    """The child that proves the fork server is up and has imported the worker's modules."""


class ForkedWorker:
    """One forked worker, with the subset of :class:`asyncio.subprocess.Process` the launcher uses."""

    def __init__(self, process: ForkServerProcess) -> None:
        self._process = process
        self.pid: int = process.pid or 0
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        # The fork server writes the child's exit status to this pipe when it reaps it.
        loop.add_reader(process.sentinel, self._on_sentinel, loop)

    def _on_sentinel(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._process.sentinel)
        reaped = loop.run_in_executor(_executor(), self._reap)
        reaped.add_done_callback(self._reaped)

    def _reap(self) -> int:
        code = self._process.exitcode  # the pipe is readable: this does not wait
        self._process.close()
        return FORK_SERVER_DIED if code is None else code

    def _reaped(self, reaped: asyncio.Future[int]) -> None:
        try:
            code = reaped.result()
        except Exception:
            log.exception("could not read a forked worker's exit status")
            code = FORK_SERVER_DIED
        self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    def _signal(self, number: int) -> None:
        # Only while its exit is unknown: the fork server has not reaped it, so the pid is still its.
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class ForkServer:
    """Starts workers as children of the (process-wide) fork server."""

    def __init__(self, target: ChildTarget = run_worker_child) -> None:
        self._target = target
        self._ready: asyncio.Future[None] | None = None

    async def warm(self) -> None:
        """Start the fork server if needed and wait until it has imported the worker's modules."""
        if self._ready is None or (self._ready.done() and (self._ready.cancelled() or self._ready.exception())):
            self._ready = asyncio.get_running_loop().run_in_executor(_executor(), self._warm)
        await asyncio.shield(self._ready)

    @staticmethod
    def _warm() -> None:
        started = time.perf_counter()
        _CONTEXT.set_forkserver_preload(preload_modules())
        probe = _CONTEXT.Process(target=_nothing, name="tidemark-forkserver-probe")
        probe.start()
        probe.join()
        probe.close()
        log.info("worker fork server ready", extra=fields(seconds=round(time.perf_counter() - started, 3)))

    async def start(self, env: Mapping[str, str], args: Sequence[str], name: str) -> ForkedWorker:
        """Fork a worker with ``env`` as its whole environment, running ``args``; raises ``OSError``
        when the fork server cannot start one."""
        await self.warm()
        process = _CONTEXT.Process(target=_child, args=(self._target, dict(env), list(args)), name=name)
        try:
            await asyncio.get_running_loop().run_in_executor(_executor(), process.start)
        except (EOFError, ConnectionError) as exc:  # the fork server went away mid-request
            self._ready = None
            raise OSError(f"the worker fork server did not answer: {exc}") from exc
        return ForkedWorker(process)
