"""What a service is (a definition) and what it has while running (a runtime).

A service module declares one :class:`ServiceDefinition`; ``create_app`` in
:mod:`tidemark.api.app` turns one definition into a standalone app, or several
into the single-process embedded platform. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import cancel_and_wait
from tidemark.bus import (
    Bus,
    IdempotentHandler,
    MessagingTables,
    Outbox,
    OutboxRelay,
    SessionHandler,
    create_bus,
)
from tidemark.db import create_engine, session_factory
from tidemark.db.migrate import upgrade
from tidemark.errors import TransientError
from tidemark.events import Envelope, EventPayload, Topic

log = logging.getLogger(__name__)

Setup = Callable[["ServiceRuntime"], Awaitable[None]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    metadata: sa.MetaData
    tables: MessagingTables
    migrations: str = field(metadata={"doc": "Alembic script location, e.g. `tidemark_jobs:migrations`"})
    routers: Sequence[APIRouter] = ()
    internal_routers: Sequence[APIRouter] = ()
    setup: Setup | None = None
    teardown: Setup | None = None


class ServiceRuntime:
    """Engine, sessions, bus, outbox and background tasks of one running service."""

    def __init__(self, definition: ServiceDefinition, settings: Any, bus: Bus | None = None) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.engine = create_engine(settings.database)
        self.sessions = session_factory(self.engine)
        self.bus = bus if bus is not None else create_bus(settings)
        self._owns_bus = bus is None
        self.outbox = Outbox(definition.tables.outbox, source=f"{definition.name}-svc")
        self.relay = OutboxRelay(
            self.sessions, definition.tables.outbox, self.bus, poll_seconds=settings.outbox_poll_seconds
        )
        self.outbox.bind_relay(self.relay.wakeup)
        self.extras: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; wakes the outbox relay after."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc.orig, (ConnectionError, OSError)):
                raise TransientError(f"{self.name} database unavailable") from exc
            raise
        self.outbox.notify()

    async def emit(self, session: AsyncSession, payload: EventPayload) -> Envelope:
        return await self.outbox.add(session, payload)

    def consume(self, purpose: str, topics: Sequence[Topic], handler: SessionHandler) -> None:
        group = f"tidemark-{self.name}.{purpose}"
        self.bus.subscribe(
            group,
            topics,
            IdempotentHandler(group, self.sessions, self.definition.tables.inbox, handler, self.outbox.notify),
        )

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(_logged(coro, f"{self.name}.{name}"), name=name))

    async def migrate(self) -> None:
        await upgrade(self.engine, self.definition.migrations)

    async def start(self, migrate: bool = False) -> None:
        if migrate:
            await self.migrate()
        if self.definition.setup is not None:
            await self.definition.setup(self)
        if self._owns_bus:
            await self.bus.start()
        self.spawn(self.relay.run(), "outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self.definition.teardown is not None:
            await self.definition.teardown(self)
        if self._owns_bus:
            await self.bus.stop()
        await self.engine.dispose()

    async def ready(self) -> dict[str, bool]:
        checks = {"database": False, "broker": False}
        try:
            async with self.sessions() as session:
                await asyncio.wait_for(session.execute(sa.text("SELECT 1")), timeout=3)
            checks["database"] = True
        except (DBAPIError, OSError, TimeoutError):
            pass
        checks["broker"] = await self.bus.ready()
        return checks


async def _logged(coro: Coroutine[Any, Any, None], name: str) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s crashed", name)
        raise


def handle_types(handlers: Mapping[type[EventPayload], Callable[[AsyncSession, Any, Envelope], Awaitable[None]]]
                 ) -> SessionHandler:
    """One session handler that dispatches on the event type and ignores types it was not given."""
    by_name = {model.event_type: (model, fn) for model, fn in handlers.items()}

    async def handler(session: AsyncSession, envelope: Envelope) -> None:
        entry = by_name.get(envelope.type)
        if entry is None:
            return
        model, fn = entry
        await fn(session, envelope.payload_as(model), envelope)

    return handler


def runtime_of(request: Request, name: str) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtimes[name]
    return runtime
