"""What every bus implementation offers."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence

from tidemark.events import Envelope, Topic

Handler = Callable[[Envelope], Awaitable[None]]


class Bus(abc.ABC):
    """Publish envelopes to topics; deliver them to consumer groups at least once.

    ``subscribe`` is called before ``start``. A handler that raises a
    :class:`~tidemark.errors.TransientError` gets the same event again after a
    backoff; any other exception is logged, counted and the event is skipped, so
    one poison event never blocks a partition.
    """

    @abc.abstractmethod
    def subscribe(self, group: str, topics: Sequence[Topic], handler: Handler) -> None: ...

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, topic: Topic, envelope: Envelope) -> None:
        """Returns once the broker acknowledged the event (acks=all)."""

    async def publish_many(self, events: Sequence[tuple[Topic, Envelope]]) -> None:
        """Publish several, in order per key; returns once all were acknowledged. A bus that can
        have many in flight at once (Kafka) overrides this; a failure may leave some published,
        which at-least-once delivery allows."""
        for topic, envelope in events:
            await self.publish(topic, envelope)

    @abc.abstractmethod
    async def ready(self) -> bool:
        """Whether the broker answers now (for /readyz)."""
