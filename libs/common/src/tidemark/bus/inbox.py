"""Idempotent consumers: the processed event id and the handler's writes commit together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidemark.bus.metrics import EVENTS_CONSUMED
from tidemark.db.types import utcnow
from tidemark.events import Envelope

SessionHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


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


class IdempotentHandler:
    """Wraps a ``(session, envelope)`` handler so a redelivered event changes nothing."""

    def __init__(
        self,
        consumer: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: sa.Table,
        handler: SessionHandler,
        after_commit: Callable[[], None] | None = None,
        wants: Callable[[Envelope], bool] | None = None,
    ) -> None:
        self._consumer = consumer
        self._wants = wants
        self._sessions = sessions
        self._inbox = inbox
        self._handler = handler
        self._after_commit = after_commit

    async def __call__(self, envelope: Envelope) -> None:
        if self._wants is not None and not self._wants(envelope):
            # Nothing to apply, so nothing to remember: no transaction for the many events of a
            # topic this consumer ignores (a scheduler pass emits thousands it never reads).
            EVENTS_CONSUMED.labels(self._consumer, envelope.type, "ignored").inc()
            return
        async with self._sessions() as session, session.begin():
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
            self._after_commit()
