"""A service's database away for a while (PostgreSQL restarting, killed, unreachable): the outbox relay
keeps going and publishes once it is back, a consumed event is retried rather than skipped as poison,
and the API answers 503 rather than 500. The unreachable database is a port nothing listens on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tidemark.api.problems import install_problem_handlers
from tidemark.bus import IdempotentHandler, MemoryBus, Outbox, OutboxRelay, messaging_tables
from tidemark.errors import TransientError
from tidemark.events import Envelope, RunStarted
from tidemark_testing.ports import free_port

pytestmark = pytest.mark.unit


def started() -> RunStarted:
    return RunStarted(run_id=uuid.uuid4(), pipeline_id=uuid.uuid4(), launcher="local", worker_ref="1")


@pytest.fixture
async def away() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def test_the_outbox_relay_outlives_its_database_being_away_and_publishes_after(
    tmp_path: Path, away: async_sessionmaker[AsyncSession]
) -> None:
    tables = messaging_tables(sa.MetaData())
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(tables.outbox.metadata.create_all)
    here = async_sessionmaker(engine, expire_on_commit=False)
    down = True

    def sessions() -> Any:
        return away() if down else here()

    bus = MemoryBus()
    outbox = Outbox(tables.outbox, source="svc")
    relay = OutboxRelay(sessions, tables.outbox, bus, poll_seconds=0.05)  # type: ignore[arg-type]
    outbox.bind_relay(relay.wakeup)
    task = asyncio.create_task(relay.run())
    try:
        async with here() as session, session.begin():
            await outbox.add(session, started())
        await asyncio.sleep(1.0)  # a few attempts against the database that is away
        assert not task.done(), task.exception() if task.done() else None
        down = False
        for _ in range(300):
            if await relay.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert await relay.pending() == 0, "published once the database was back"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def test_an_event_consumed_while_the_database_is_away_is_retried_not_skipped(
    away: async_sessionmaker[AsyncSession],
) -> None:
    applied: list[Envelope] = []

    async def apply(_session: AsyncSession, envelope: Envelope) -> None:
        applied.append(envelope)

    tables = messaging_tables(sa.MetaData())
    handler = IdempotentHandler("svc.runs", away, tables.inbox, apply)
    # The bus's dispatch hands a TransientError's event back after a backoff; any other error skips it.
    with pytest.raises(TransientError, match="database unavailable"):
        await handler(Envelope.wrap(started(), source="test"))
    assert applied == []


async def test_an_api_call_while_the_database_is_away_is_a_503_problem() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things")
    async def things() -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/things")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "https://tidemark.dev/problems/unavailable"
    assert answer.json()["kind"] == "transient"

