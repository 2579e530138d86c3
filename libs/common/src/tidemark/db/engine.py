"""Async engines and sessions. The caller (a route or handler) owns the transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tidemark.settings import DatabaseSettings

# Every statement a process sends its database: what a scheduler pass or a request costs (the
# orchestrator benchmark divides it by the ticks fired). One series per process; no labels to grow.
DB_STATEMENTS = Counter("tidemark_db_statements_total", "SQL statements sent to the service database.")


def _count_statement(*_args: Any) -> None:
    DB_STATEMENTS.inc()


SQLITE_OVERFLOW = 45


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    url = make_url(settings.url)
    kwargs: dict[str, Any] = {"echo": settings.echo}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # The worker process writes the ingest database while the service reads it.
        kwargs["connect_args"] = {"timeout": 30}
        # WAL lets readers share the file, and a connection is only a file handle and a thread: a
        # larger overflow keeps a burst of requests (200 API clients, see `make bench-api`) from
        # waiting out the pool's timeout while the file itself could serve them.
        kwargs.update(pool_size=settings.pool_size, max_overflow=SQLITE_OVERFLOW)
        engine = create_async_engine(url, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        kwargs.update(pool_size=settings.pool_size, pool_pre_ping=True)
        engine = create_async_engine(url, **kwargs)
    sa.event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
