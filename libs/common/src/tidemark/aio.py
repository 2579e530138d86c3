"""Small asyncio helpers shared by the bus, the service runtime and the launchers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

# How long a stopping service lets a unit of work (one event batch, one outbox batch) finish.
FINISH_GRACE_SECONDS = 10.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task, then wait until each has finished unwinding."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def finish_before_cancel(work: Awaitable[T], grace: float = FINISH_GRACE_SECONDS) -> T:
    """Await ``work``; when the caller is cancelled meanwhile, let ``work`` finish first (at most ``grace``
    seconds more), then let the cancellation through.

    Loops that hold a database transaction per unit of work wrap that unit in this. A transaction
    cancelled half-way leaves its connection mid-statement: SQLAlchemy can only close it after the
    statement returns, and on SQLite a write lock held meanwhile makes every other writer of the file
    wait out its busy timeout (30 s) while the service stops.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # its outcome no longer matters: the caller is cancelled
        raise


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set, at most ``seconds``; True when it was set.

    Loops that sleep on a wake-up event use this rather than ``asyncio.wait_for(event.wait(), t)``:
    on Python 3.11 that can swallow a cancellation arriving just as the event is set, and a loop
    that misses its cancellation never stops, so its service never shuts down.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
