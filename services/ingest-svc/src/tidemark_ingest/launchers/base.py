"""The launcher interface: start a worker for a run, and report when it exits."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Awaitable
from typing import ClassVar, Protocol

from tidemark.events import ErrorKind
from tidemark_ingest.launchers.spec import WorkerSpec


class ExitCallback(Protocol):
    """Called when a supervised worker ends: the run id, the exit code (negative: the signal that
    stopped it), and, when the launcher knows it in words (a Job past its deadline, a pod that could not
    pull its image), the reason, which then is the run's error; ``kind`` says whether a retry may help."""

    def __call__(self, run_id: uuid.UUID, code: int, reason: str | None = None,
                 kind: ErrorKind = "terminal") -> Awaitable[None]: ...


class Launcher(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    async def launch(self, spec: WorkerSpec) -> str:
        """Start the worker ``spec`` describes (``tidemark-worker run RUN_ID``), filling in its secrets;
        return a reference to it (process id, Job name).

        Raise a :class:`~tidemark.errors.TidemarkError` (or ``OSError``) when it cannot start.
        """

    @abc.abstractmethod
    async def stop(self, run_id: uuid.UUID, worker_ref: str | None, grace_seconds: float) -> bool:
        """Stop the worker of ``run_id`` (``worker_ref`` as :meth:`launch` returned it): ask it to stop
        (SIGTERM: it stops reading and commits nothing), and force it after ``grace_seconds``.

        Return once it is gone: True when a worker was found, False when none runs for the run
        (it never started, or already ended). Its exit is reported as any exit is."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin supervising (called once when the service starts): e.g. adopt workers still running."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop supervising (called when the service stops)."""
