"""The bus's own gauges move with what happens: the in-process bus's consumer lag, and the outbox
relay's backlog and the age of its oldest unsent event while the broker refuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tidemark.bus import MemoryBus, Outbox, OutboxRelay, messaging_tables
from tidemark.errors import TransientError
from tidemark.events import Envelope, RunStarted, Topic

pytestmark = pytest.mark.unit


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return found if found is not None else 0.0


def started() -> RunStarted:
    return RunStarted(run_id=uuid.uuid4(), pipeline_id=uuid.uuid4(), launcher="local", worker_ref="1")


async def eventually(check: object, what: str) -> None:
    assert callable(check)
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def test_memory_bus_lag_counts_events_queued_for_a_group_until_handled() -> None:
    group = f"lag-{uuid.uuid4().hex[:6]}"
    release = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        await release.wait()

    bus = MemoryBus()
    bus.subscribe(group, [Topic.RUNS], slow)
    await bus.start()
    try:
        for _ in range(3):
            await bus.publish(Topic.RUNS, Envelope.wrap(started(), source="test"))
        assert value("tidemark_consumer_lag_messages", group=group, topic=Topic.RUNS.value) == 3
        release.set()
        await bus.drain()
        assert value("tidemark_consumer_lag_messages", group=group, topic=Topic.RUNS.value) == 0
    finally:
        await bus.stop()


async def test_memory_bus_lag_forgets_events_dropped_at_stop() -> None:
    group = f"lag-{uuid.uuid4().hex[:6]}"
    bus = MemoryBus()
    bus.subscribe(group, [Topic.RUNS], lambda e: asyncio.Event().wait())
    await bus.start()
    for _ in range(2):
        await bus.publish(Topic.RUNS, Envelope.wrap(started(), source="test"))
    await bus.stop()
    assert value("tidemark_consumer_lag_messages", group=group, topic=Topic.RUNS.value) == 0


class Refusing(MemoryBus):
    """A broker that refuses until told to accept."""

    def __init__(self) -> None:
        super().__init__()
        self.accept = False

    async def publish_many(self, events: Sequence[tuple[Topic, Envelope]]) -> None:
        if not self.accept:
            raise TransientError("broker down")
        await super().publish_many(events)


async def test_outbox_backlog_and_oldest_age_grow_while_the_broker_refuses_and_clear_after(
    tmp_path: Path,
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    tables = messaging_tables(sa.MetaData())
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(tables.outbox.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    bus = Refusing()
    outbox = Outbox(tables.outbox, source=service)
    relay = OutboxRelay(sessions, tables.outbox, bus, poll_seconds=0.05, service=service)
    outbox.bind_relay(relay.wakeup)
    task = asyncio.create_task(relay.run())
    try:
        async with sessions() as session, session.begin():
            await outbox.add(session, started())
            await outbox.add(session, started())
        outbox.notify()
        await eventually(lambda: value("tidemark_outbox_pending_events", outbox=service) == 2, "the backlog")
        first = value("tidemark_outbox_oldest_pending_age_seconds", outbox=service)
        await asyncio.sleep(0.3)
        # Read at scrape time: the age keeps growing while nothing can be published.
        assert value("tidemark_outbox_oldest_pending_age_seconds", outbox=service) >= first + 0.25

        bus.accept = True
        await eventually(lambda: value("tidemark_outbox_pending_events", outbox=service) == 0, "the relay to publish")
        assert value("tidemark_outbox_oldest_pending_age_seconds", outbox=service) == 0
        assert len(bus.published[Topic.RUNS]) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()
