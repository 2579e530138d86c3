"""Idempotent consumers: the processed event id and the handler's writes commit together."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.bus.metrics import EVENTS_CONSUMED
from tidemark.db.errors import unavailable
from tidemark.db.types import utcnow
from tidemark.errors import TransientError
from tidemark.events import Envelope

SessionHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]
# Applies events fetched together (each fresh, in delivery order) in the caller's transaction, as a set.
BatchHandler = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]


async def insert_ignore(session: AsyncSession, table: sa.Table, values: dict[str, object]) -> bool:
    """Insert a row unless its key exists; True when it was inserted."""
    dialect = session.get_bind().dialect.name
    stmt: sa.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"insert_ignore: dialect {dialect}")
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def insert_ignore_many(session: AsyncSession, table: sa.Table, key: str,
                             rows: Sequence[dict[str, object]]) -> set[object]:
    """Insert the rows whose key is not there yet, in one statement; the ``key`` values inserted."""
    dialect = session.get_bind().dialect.name
    stmt: sa.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"insert_ignore_many: dialect {dialect}")
    # SQLAlchemy's insertmanyvalues: one multi-row INSERT ... RETURNING, however many rows.
    return set((await session.scalars(stmt.returning(table.c[key]), list(rows))).all())


# PostgreSQL's serialization failure and deadlock: the transaction lost a race, and the same work
# succeeds when tried again (two replicas handling overlapping events lock rows in different orders).
_RETRYABLE_STATES = ("40001", "40P01")


@contextlib.asynccontextmanager
async def _transient_failures(consumer: str) -> AsyncIterator[None]:
    """What is no fault of the events: a lost race, or the database being away (one rule,
    ``tidemark.db.unavailable``). They are handled again after a backoff, never skipped as poison."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRYABLE_STATES:
            raise TransientError(f"lost a race with another transaction ({exc.orig.__class__.__name__}); "
                                 "handling it again") from exc
        if unavailable(exc):
            raise TransientError(f"{consumer}: database unavailable") from exc
        raise


class IdempotentHandler:
    """Wraps a ``(session, envelope)`` handler so a redelivered event changes nothing."""

    def __init__(
        self,
        consumer: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: sa.Table,
        handler: SessionHandler,
        after_commit: Callable[[AsyncSession], None] | None = None,
        wants: Callable[[Envelope], bool] | None = None,
        together: BatchHandler | None = None,
    ) -> None:
        self._consumer = consumer
        self._wants = wants
        self._sessions = sessions
        self._inbox = inbox
        self._handler = handler
        self._after_commit = after_commit
        self._together = together

    async def __call__(self, envelope: Envelope) -> None:
        if self._wants is not None and not self._wants(envelope):
            # Nothing to apply, so nothing to remember: no transaction for the many events of a
            # topic this consumer ignores (a scheduler pass emits thousands it never reads).
            EVENTS_CONSUMED.labels(self._consumer, envelope.type, "ignored").inc()
            return
        async with self._sessions() as session, _transient_failures(self._consumer), session.begin():
            fresh = await insert_ignore(
                session,
                self._inbox,
                {"consumer": self._consumer, "event_id": envelope.id, "processed_at": utcnow()},
            )
            if not fresh:
                EVENTS_CONSUMED.labels(self._consumer, envelope.type, "duplicate").inc()
                return
            await self._handler(session, envelope)
        if self._after_commit is not None:
            self._after_commit(session)

    async def many(self, envelopes: Sequence[Envelope]) -> None:
        """Apply ``envelopes`` in order in one transaction, each recorded as processed (one statement
        for all) and applied once; raises, with nothing applied, if any of them fails. With
        ``together``, the fresh ones are handed to it at once (it applies them as a set); else each
        goes to the handler in turn with an empty identity map, so it sees what the ones before it
        wrote, never a stale object."""
        # Counted once the batch commits: a test or a dashboard that sees a duplicate counted may rely
        # on the first delivery's writes being visible, and a batch that rolls back is handled again
        # one by one, where each event is counted then.
        outcomes: list[tuple[str, str]] = []
        wanted: dict[uuid.UUID, Envelope] = {}
        for envelope in envelopes:
            if self._wants is not None and not self._wants(envelope):
                outcomes.append((envelope.type, "ignored"))
            elif envelope.id in wanted:
                outcomes.append((envelope.type, "duplicate"))
            else:
                wanted[envelope.id] = envelope
        if not wanted:
            _count(self._consumer, outcomes)
            return
        async with self._sessions() as session, _transient_failures(self._consumer), session.begin():
            now = utcnow()
            inserted = await insert_ignore_many(
                session, self._inbox, "event_id",
                [{"consumer": self._consumer, "event_id": event_id, "processed_at": now} for event_id in wanted])
            fresh = []
            for event_id, envelope in wanted.items():
                if event_id in inserted:
                    fresh.append(envelope)
                else:
                    outcomes.append((envelope.type, "duplicate"))
            if self._together is not None:
                if fresh:
                    await self._together(session, fresh)
            else:
                for envelope in fresh:
                    await self._handler(session, envelope)
                    await session.flush()
                    session.expunge_all()
        _count(self._consumer, outcomes)
        if self._after_commit is not None:
            self._after_commit(session)


def _count(consumer: str, outcomes: Sequence[tuple[str, str]]) -> None:
    for event_type, outcome in outcomes:
        EVENTS_CONSUMED.labels(consumer, event_type, outcome).inc()
