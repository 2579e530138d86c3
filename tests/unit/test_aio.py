"""Loops that sleep on a wake-up event must stop when cancelled, even when the event is set at the
same moment (asyncio.wait_for on Python 3.11 swallows that cancellation, and the service hangs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from tidemark.aio import finish_before_cancel, wait_for_event

pytestmark = pytest.mark.unit


async def _loop(wait: Callable[[asyncio.Event], Awaitable[object]], wakeup: asyncio.Event, turns: list[int]) -> None:
    while True:
        await wait(wakeup)
        wakeup.clear()
        turns.append(1)
        await asyncio.sleep(0)


async def _cancelled_while_woken(wait: Callable[[asyncio.Event], Awaitable[object]]) -> bool:
    """True when a loop sleeping in ``wait`` stops after being cancelled as its event is set."""
    wakeup, turns = asyncio.Event(), []
    task = asyncio.create_task(_loop(wait, wakeup, turns))
    await asyncio.sleep(0.01)  # the loop sleeps on the event
    wakeup.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=1)
    stopped = task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return stopped


async def test_a_loop_sleeping_on_its_event_stops_when_cancelled_as_it_is_woken() -> None:
    assert await _cancelled_while_woken(lambda e: wait_for_event(e, 30))


async def test_it_waits_at_most_the_given_time_and_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    event.set()
    assert await wait_for_event(event, 5) is True


async def test_work_finishes_before_its_cancelled_caller_stops_unless_it_outlasts_the_grace() -> None:
    finished: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append(name)

    for name, seconds in [("short", 0.1), ("stuck", 30)]:
        caller = asyncio.create_task(finish_before_cancel(work(name, seconds), grace=0.3))
        await asyncio.sleep(0.02)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5)
    # The short unit ran to its end; the stuck one was cut at the grace, and both callers were cancelled.
    assert finished == ["short"]
