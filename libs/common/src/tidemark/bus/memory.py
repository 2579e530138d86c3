"""In-process bus: only for the single-process mode and unit tests. Nothing survives a restart."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from tidemark.aio import cancel_and_wait
from tidemark.bus.base import Bus, Handler
from tidemark.bus.dispatch import dispatch_many
from tidemark.bus.metrics import CONSUMER_LAG, EVENTS_PUBLISHED
from tidemark.events import Envelope, Topic

BATCH = 100  # events handled together at most, as a Kafka fetch returns them


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._groups: dict[str, tuple[list[Topic], Handler]] = {}
        self._queues: dict[str, asyncio.Queue[tuple[Topic, Envelope]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.published: dict[Topic, list[Envelope]] = defaultdict(list)

    def subscribe(self, group: str, topics: Sequence[Topic], handler: Handler) -> None:
        self._groups[group] = (list(topics), handler)

    async def start(self) -> None:
        for group, (_, handler) in self._groups.items():
            queue: asyncio.Queue[tuple[Topic, Envelope]] = asyncio.Queue()
            self._queues[group] = queue
            self._tasks.append(asyncio.create_task(self._run(group, queue, handler)))

    async def _run(self, group: str, queue: asyncio.Queue[tuple[Topic, Envelope]], handler: Handler) -> None:
        while True:
            # What is queued is handled together, as a Kafka consumer handles what one fetch returned.
            taken = [await queue.get()]
            while not queue.empty() and len(taken) < BATCH:
                taken.append(queue.get_nowait())
            try:
                await dispatch_many(group, handler, [envelope for _, envelope in taken])
            finally:
                for topic, _ in taken:
                    # The lag is what is queued and not yet handled, as a Kafka group's lag would be.
                    CONSUMER_LAG.labels(group, topic.value).dec()
                    queue.task_done()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for group, queue in self._queues.items():  # dropped unhandled: nobody lags on them any more
            while not queue.empty():
                topic, _ = queue.get_nowait()
                CONSUMER_LAG.labels(group, topic.value).dec()
        self._queues.clear()

    async def publish(self, topic: Topic, envelope: Envelope) -> None:
        self.published[topic].append(envelope)
        EVENTS_PUBLISHED.labels(topic.value, envelope.type).inc()
        for group, (topics, _) in self._groups.items():
            if topic in topics and group in self._queues:
                CONSUMER_LAG.labels(group, topic.value).inc()
                self._queues[group].put_nowait((topic, envelope))

    async def drain(self) -> None:
        """Wait until every delivered event was handled (tests use it to avoid sleeping)."""
        for queue in self._queues.values():
            await queue.join()

    async def ready(self) -> bool:
        return True
