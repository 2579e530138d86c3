"""Two consumers whose transactions deadlock on PostgreSQL (replicas handling overlapping events
lock rows in different orders): the one PostgreSQL aborts handles its event again, it is not
skipped as a poison event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.bus import IdempotentHandler, SessionHandler
from tidemark.bus.dispatch import dispatch
from tidemark.bus.outbox import messaging_tables
from tidemark.db.engine import create_engine, session_factory
from tidemark.events import Envelope, RunFinished, RunStatus
from tidemark.settings import DatabaseSettings

pytestmark = pytest.mark.integration

METADATA = sa.MetaData()
TABLES = messaging_tables(METADATA)
CELLS = sa.Table("cells", METADATA, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("n", sa.Integer, nullable=False))


async def test_a_deadlocked_event_is_handled_again_not_skipped(pg_database: Callable[[], str]) -> None:
    engine = create_engine(DatabaseSettings(url=pg_database()))
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
        await connection.execute(sa.insert(CELLS), [{"id": 1, "n": 0}, {"id": 2, "n": 0}])
    sessions = session_factory(engine)
    both_hold_one = asyncio.Barrier(2)
    attempts = {1: 0, 2: 0}

    def bump_both(first: int, second: int) -> SessionHandler:
        async def handle(session: AsyncSession, _envelope: Envelope) -> None:
            attempts[first] += 1
            await session.execute(sa.update(CELLS).where(CELLS.c.id == first).values(n=CELLS.c.n + 1))
            if attempts[first] == 1:
                await both_hold_one.wait()  # each holds its first row and now wants the other's
            await session.execute(sa.update(CELLS).where(CELLS.c.id == second).values(n=CELLS.c.n + 1))
        return handle

    one = IdempotentHandler("one", sessions, TABLES.inbox, bump_both(1, 2))
    two = IdempotentHandler("two", sessions, TABLES.inbox, bump_both(2, 1))

    def event() -> Envelope:
        return Envelope.wrap(RunFinished(run_id=uuid.uuid4(), pipeline_id=uuid.uuid4(), status=RunStatus.SUCCEEDED),
                             source="ingest-svc")

    try:
        await asyncio.wait_for(asyncio.gather(dispatch("one", one, event()), dispatch("two", two, event())), 60)
        async with sessions() as session:
            cells = {row.id: row.n for row in (await session.execute(sa.select(CELLS.c.id, CELLS.c.n))).all()}
            recorded = await session.scalar(sa.select(sa.func.count()).select_from(TABLES.inbox))
    finally:
        await engine.dispose()
    assert sorted(attempts.values()) == [1, 2], "PostgreSQL aborted one of them, which then ran again"
    assert cells == {1: 2, 2: 2}, "both events applied in full, once"
    assert recorded == 2
