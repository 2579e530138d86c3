"""Transactional outbox: the state change and its event commit together; a relay publishes.

A service calls :meth:`Outbox.add` inside the transaction that changes its state.
:class:`OutboxRelay` publishes unsent rows in order and marks them sent, so an
event survives a broker outage or a crash between commit and publish. Publishing
is at-least-once; consumers deduplicate on the envelope id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.aio import finish_before_cancel, wait_for_event
from tidemark.bus.base import Bus
from tidemark.bus.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISH_SECONDS
from tidemark.bus.retry import backoff_seconds
from tidemark.db.errors import unavailable
from tidemark.db.types import UTCDateTime, utcnow
from tidemark.errors import TransientError
from tidemark.events import Envelope, EventPayload, Topic
from tidemark.logs import fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessagingTables:
    outbox: sa.Table
    inbox: sa.Table
    tokens: sa.Table


def messaging_tables(metadata: sa.MetaData) -> MessagingTables:
    """Declare the outbox, the processed-events inbox and the issued-tokens projection in a service's own
    metadata."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True, index=True),
    )
    inbox = sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", UTCDateTime, nullable=False),
    )
    # Every service's projection of the `token.*` events (see tidemark.access): digests, never values.
    tokens = sa.Table(
        "access_tokens",
        metadata,
        sa.Column("token_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    return MessagingTables(outbox=outbox, inbox=inbox, tokens=tokens)


ADDED = "tidemark.outbox.added"  # session.info key: this transaction added events


class Outbox:
    def __init__(self, table: sa.Table, source: str) -> None:
        self._table = table
        self._source = source
        self._wakeup: asyncio.Event | None = None

    def bind_relay(self, wakeup: asyncio.Event) -> None:
        self._wakeup = wakeup

    async def add(self, session: AsyncSession, payload: EventPayload) -> Envelope:
        """Record ``payload`` in the caller's transaction. Call :meth:`notify` after commit."""
        session.info[ADDED] = True
        envelope = Envelope.wrap(payload, source=self._source)
        await session.execute(
            sa.insert(self._table).values(
                event_id=envelope.id,
                topic=payload.topic.value,
                envelope=envelope.model_dump_json(),
                created_at=envelope.occurred_at,
            )
        )
        return envelope

    async def add_many(self, session: AsyncSession, payloads: Sequence[EventPayload]) -> list[Envelope]:
        """Record ``payloads`` in order, in one statement (a scheduler pass emits thousands)."""
        envelopes = [Envelope.wrap(p, source=self._source) for p in payloads]
        if envelopes:
            session.info[ADDED] = True
            await session.execute(sa.insert(self._table), [
                {"event_id": e.id, "topic": p.topic.value, "envelope": e.model_dump_json(), "created_at": e.occurred_at}
                for e, p in zip(envelopes, payloads, strict=True)])
        return envelopes

    def notify(self, session: AsyncSession | None = None) -> None:
        """Wake the relay now instead of at its next poll; given the committed ``session``, only if
        it added events (a busy consumer commits thousands of transactions that add none)."""
        if self._wakeup is not None and (session is None or session.info.get(ADDED)):
            self._wakeup.set()


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: sa.Table,
        bus: Bus,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
        retention: timedelta = timedelta(days=1),
        service: str = "unknown",
    ) -> None:
        self._sessions = sessions
        self._service = service
        # When the oldest unsent event was written: the age gauge reads it at scrape time, so the
        # age keeps growing while the relay waits out a broker outage.
        self._oldest: datetime | None = None
        self._table = table
        self._bus = bus
        self._poll = poll_seconds
        self._batch = batch_size
        self._retention = retention
        self.wakeup = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch in order; returns how many were sent. Raises TransientError if the
        broker refused, leaving the unsent rows for the next attempt."""
        t = self._table
        sent = 0
        async with self._sessions() as session, session.begin():
            query = (
                sa.select(t.c.seq, t.c.topic, t.c.envelope)
                .where(t.c.published_at.is_(None))
                .order_by(t.c.seq)
                .limit(self._batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                # Two replicas never publish the same row at once (each would still be safe).
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            started = time.perf_counter()
            try:
                if rows:
                    await self._bus.publish_many([(Topic(topic), Envelope.model_validate_json(raw))
                                                  for _, topic, raw in rows])
                    await session.execute(
                        sa.update(t).where(t.c.seq.in_([seq for seq, _, _ in rows])).values(published_at=utcnow()))
                    sent = len(rows)
            finally:
                if rows:
                    OUTBOX_PUBLISH_SECONDS.observe(time.perf_counter() - started)
        return sent

    async def pending(self) -> int:
        t = self._table
        async with self._sessions() as session:
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(t).where(t.c.published_at.is_(None))
            )
        return int(count or 0)

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many events wait to be published, and when the oldest of them was written."""
        t = self._table
        async with self._sessions() as session:
            count, oldest = (await session.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(t.c.published_at.is_(None))
            )).one()
        return int(count or 0), oldest

    def oldest_age_seconds(self) -> float:
        return max(0.0, (utcnow() - self._oldest).total_seconds()) if self._oldest is not None else 0.0

    async def observe_backlog(self) -> None:
        count, self._oldest = await self.backlog()
        OUTBOX_PENDING.labels(self._service).set(count)

    async def purge_published(self) -> None:
        t = self._table
        async with self._sessions() as session, session.begin():
            await session.execute(
                sa.delete(t).where(t.c.published_at.is_not(None), t.c.published_at < utcnow() - self._retention)
            )

    async def run(self) -> None:
        OUTBOX_OLDEST_AGE.labels(self._service).set_function(self.oldest_age_seconds)
        try:
            await self._relay()
        finally:
            self._oldest = None  # a stopped relay reports no age that keeps growing

    async def _relay(self) -> None:
        attempt = 0
        last_purge = 0.0
        last_count = 0.0
        while True:
            try:
                sent = await finish_before_cancel(self.publish_pending())
                attempt = 0
                # The backlog's count and age are a scan: while busy, once a second at most, not
                # after every batch (each commit that adds events wakes the relay).
                if sent == 0 or time.monotonic() - last_count >= 1.0:
                    await self.observe_backlog()
                    last_count = time.monotonic()
                if time.monotonic() - last_purge > 3600:
                    await self.purge_published()
                    last_purge = time.monotonic()
                if sent == self._batch:
                    continue
            except TransientError as exc:
                delay = backoff_seconds(attempt, base=0.5, cap=15)
                attempt += 1
                log.warning("outbox relay cannot publish; will retry",
                            extra=fields(error=exc.message, retry_in_s=round(delay, 2)))
                # The backlog still shows while the broker is away (unless the database is away too).
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self.observe_backlog()
                await asyncio.sleep(delay)
                continue
            except (SQLAlchemyError, OSError) as exc:
                # Its own database away (restarting, connection lost): the relay must outlive that, or
                # nothing this service writes is published again until it restarts.
                delay = backoff_seconds(attempt, base=0.5, cap=15)
                attempt += 1
                if unavailable(exc):
                    log.warning("outbox relay cannot reach its database; will retry",
                                extra=fields(error=type(exc).__name__, retry_in_s=round(delay, 2)))
                else:
                    log.exception("outbox relay failed; will retry", extra=fields(retry_in_s=round(delay, 2)))
                await asyncio.sleep(delay)
                continue
            self.wakeup.clear()
            await wait_for_event(self.wakeup, self._poll)
