"""Events fetched together are applied together (one transaction), and exactly as one at a time would:
each once, in order, a poison event skipped without losing the others."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.bus import IdempotentHandler, MemoryBus
from tidemark.bus.outbox import messaging_tables
from tidemark.db.engine import create_engine, session_factory
from tidemark.events import Envelope, RunFinished, RunStatus, Topic
from tidemark.settings import DatabaseSettings

pytestmark = pytest.mark.unit

METADATA = sa.MetaData()
TABLES = messaging_tables(METADATA)
APPLIED = sa.Table("applied", METADATA, sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
                   sa.Column("run_id", sa.Uuid, nullable=False))


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/bus.db"))
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield session_factory(engine)
    await engine.dispose()


def finished(run_id: uuid.UUID) -> Envelope:
    return Envelope.wrap(RunFinished(run_id=run_id, pipeline_id=uuid.uuid4(), status=RunStatus.SUCCEEDED),
                         source="ingest-svc")


async def applied(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session:
        return list((await session.scalars(sa.select(APPLIED.c.run_id).order_by(APPLIED.c.seq))).all())


async def test_events_queued_together_are_applied_in_one_transaction_each_once_in_order(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    transactions: list[uuid.UUID] = []

    async def record(session: AsyncSession, envelope: Envelope) -> None:
        transactions.append(session.info.setdefault("transaction", uuid.uuid4()))
        await session.execute(sa.insert(APPLIED).values(run_id=envelope.payload_as(RunFinished).run_id))

    bus = MemoryBus()
    bus.subscribe("g", [Topic.RUNS], IdempotentHandler("g", sessions, TABLES.inbox, record))
    runs = [uuid.uuid4() for _ in range(20)]
    envelopes = [finished(r) for r in runs]
    await bus.start()
    # Published without yielding to the consumer: it finds them all queued, as a Kafka fetch returns a batch.
    for envelope in [*envelopes, envelopes[3]]:  # the fourth delivered twice
        await bus.publish(Topic.RUNS, envelope)
    await bus.drain()
    await bus.stop()
    assert await applied(sessions) == runs
    assert len(set(transactions)) == 1  # one session: one transaction for the batch
    async with sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(TABLES.inbox)) == 20


async def test_a_poison_event_in_a_batch_is_skipped_and_the_others_are_still_applied(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    poison = uuid.uuid4()

    async def record(session: AsyncSession, envelope: Envelope) -> None:
        run_id = envelope.payload_as(RunFinished).run_id
        await session.execute(sa.insert(APPLIED).values(run_id=run_id))
        if run_id == poison:
            raise ValueError("a handler bug")

    bus = MemoryBus()
    bus.subscribe("g", [Topic.RUNS], IdempotentHandler("g", sessions, TABLES.inbox, record))
    runs = [uuid.uuid4(), uuid.uuid4(), poison, uuid.uuid4()]
    await bus.start()
    for run_id in runs:
        await bus.publish(Topic.RUNS, finished(run_id))
    await bus.drain()
    await bus.stop()
    # The batch's transaction rolled back as a whole; one at a time, each but the poison commits.
    assert await applied(sessions) == [r for r in runs if r != poison]


async def test_a_set_handler_gets_each_new_event_of_a_batch_once_in_order(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    handed: list[list[uuid.UUID]] = []

    async def one(session: AsyncSession, envelope: Envelope) -> None:
        raise AssertionError("the set handler applies batches")

    async def together(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        handed.append([e.payload_as(RunFinished).run_id for e in envelopes])
        await session.execute(sa.insert(APPLIED), [{"run_id": r} for r in handed[-1]])

    handler = IdempotentHandler("g", sessions, TABLES.inbox, one, together=together)
    runs = [uuid.uuid4() for _ in range(6)]
    envelopes = [finished(r) for r in runs]
    await handler.many([envelopes[0], envelopes[1], envelopes[0], envelopes[2]])  # the first one twice
    await handler.many(envelopes)  # redelivered with three new ones
    assert handed == [runs[:3], runs[3:]]
    assert await applied(sessions) == runs


async def test_a_bus_stopped_while_a_handler_is_in_its_transaction_lets_it_commit_first(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    # A service stopping must not cut a transaction half-way: on SQLite a connection cut mid-statement
    # keeps its write lock until it can be closed, and every other writer waits out the busy timeout.
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(sa.insert(APPLIED).values(run_id=envelope.payload_as(RunFinished).run_id))
        inside.set()
        await release.wait()

    bus = MemoryBus()
    bus.subscribe("g", [Topic.RUNS], IdempotentHandler("g", sessions, TABLES.inbox, slow))
    await bus.start()
    run = uuid.uuid4()
    await bus.publish(Topic.RUNS, finished(run))
    await asyncio.wait_for(inside.wait(), 5)
    stopping = asyncio.create_task(bus.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # it waits for the handler
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert await applied(sessions) == [run]


async def test_a_duplicate_in_a_batch_is_counted_only_once_the_first_delivery_has_committed(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    """Dashboards and tests read "duplicate seen" as "the event's effect is there"."""
    from prometheus_client import REGISTRY

    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(sa.insert(APPLIED).values(run_id=envelope.payload_as(RunFinished).run_id))
        entered.set()
        await release.wait()

    def duplicates() -> float:
        value = REGISTRY.get_sample_value(
            "tidemark_events_consumed_total", {"group": "dup", "type": "run.finished", "outcome": "duplicate"})
        return value or 0.0

    handler = IdempotentHandler("dup", sessions, TABLES.inbox, slow)
    envelope = finished(uuid.uuid4())
    before = duplicates()
    batch = asyncio.create_task(handler.many([envelope, envelope]))
    await asyncio.wait_for(entered.wait(), 10)
    assert duplicates() == before  # the first delivery's transaction is still open
    release.set()
    await batch
    assert duplicates() == before + 1
    assert len(await applied(sessions)) == 1
