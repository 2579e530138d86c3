"""Small asyncio helpers shared by the bus, the service runtime and the launchers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task, then wait until each has finished unwinding."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
