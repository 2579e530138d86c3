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
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import cancel_and_wait
from tidemark.bus import (
    BatchHandler,
    Bus,
    IdempotentHandler,
    MessagingTables,
    Outbox,
    OutboxRelay,
    create_bus,
)
from tidemark.db import create_engine, session_factory, unavailable
from tidemark.db.migrate import upgrade
from tidemark.errors import TransientError
from tidemark.events import Envelope, EventPayload, Topic
from tidemark.settings import ServiceSettings

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
StateT = TypeVar("StateT")
_UNSET: Any = object()


@dataclass(frozen=True)
class ServiceDefinition(Generic[SettingsT, StateT]):
    """What a service is. ``setup`` makes its typed state (clients, locks, launchers) when it starts,
    registers its consumers and background tasks, and returns the state; ``teardown`` releases it."""

    name: str
    title: str
    metadata: sa.MetaData
    tables: MessagingTables
    migrations: str = field(metadata={"doc": "Alembic script location, e.g. `tidemark_jobs:migrations`"})
    routers: Sequence[APIRouter] = ()
    admin_routers: Sequence[APIRouter] = field(
        default=(), metadata={"doc": "/v1 routes that need an `admin` token whatever the method (tokens, alert rules)"},
    )
    internal_routers: Sequence[APIRouter] = ()
    pages: Sequence[APIRouter] = field(
        default=(), metadata={"doc": "HTML pages for browsers: no bearer dependency (they check the token "
                                     "themselves, from a cookie) and left out of the OpenAPI document"},
    )
    setup: Callable[[ServiceRuntime[SettingsT, StateT]], Awaitable[StateT]] | None = None
    teardown: Callable[[ServiceRuntime[SettingsT, StateT]], Awaitable[None]] | None = None


class ServiceRuntime(Generic[SettingsT, StateT]):
    """Engine, sessions, bus, outbox, background tasks and the typed state of one running service."""

    def __init__(self, definition: ServiceDefinition[SettingsT, StateT], settings: SettingsT,
                 bus: Bus | None = None) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings: SettingsT = settings
        self._state: StateT = _UNSET
        self.engine = create_engine(settings.database)
        self.sessions = session_factory(self.engine)
        # SQLite has one writer at a time. Its busy handler polls for the lock in each connection's
        # thread, unfairly, and gives up after its timeout; under many concurrent requests (`make
        # bench-api`) writers then failed with "database is locked". Request transactions of a SQLite
        # database therefore queue here, in order, before they begin. PostgreSQL needs no such thing.
        self._writes = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None
        self.bus = bus if bus is not None else create_bus(settings)
        self._owns_bus = bus is None
        self.outbox = Outbox(definition.tables.outbox, source=f"{definition.name}-svc")
        self.relay = OutboxRelay(
            self.sessions, definition.tables.outbox, self.bus, poll_seconds=settings.outbox_poll_seconds,
            service=definition.name,
        )
        self.outbox.bind_relay(self.relay.wakeup)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def state(self) -> StateT:
        """What the definition's ``setup`` made; there once the service has started."""
        if self._state is _UNSET:
            raise RuntimeError(f"{self.name} has not started: its state does not exist yet")
        return self._state

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; wakes the outbox relay after."""
        try:
            async with self._write_turn(), self.sessions() as session, session.begin():
                yield session
        except (DBAPIError, OSError) as exc:
            if unavailable(exc):
                raise TransientError(f"{self.name} database unavailable") from exc
            raise
        self.outbox.notify(session)

    @contextlib.asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """Wait for this SQLite database's write turn; re-entrant within one task (a nested
        transaction must not wait for the one around it)."""
        if self._writes is None or self._writer is asyncio.current_task():
            yield
            return
        async with self._writes:
            self._writer = asyncio.current_task()
            try:
                yield
            finally:
                self._writer = None

    async def emit(self, session: AsyncSession, payload: EventPayload) -> Envelope:
        return await self.outbox.add(session, payload)

    async def emit_many(self, session: AsyncSession, payloads: Sequence[EventPayload]) -> list[Envelope]:
        return await self.outbox.add_many(session, payloads)

    def consume(self, purpose: str, topics: Sequence[Topic],
                handlers: Mapping[type[Any], EventHandler[SettingsT, StateT, Any]],
                together: BatchEventHandler[SettingsT, StateT] | None = None) -> None:
        """Apply each event of ``topics`` whose type ``handlers`` names, once (the consumer group
        ``<topic prefix>-<service>.<purpose>`` records it in the same transaction); others are skipped.

        With ``together``, events fetched together are handed to it at once, in delivery order, to
        apply as a set in one transaction; ``handlers`` then apply them one at a time when that
        fails (see :func:`tidemark.bus.dispatch.dispatch_many`), so both must have the same effect."""
        group = self.settings.kafka.consumer_group(self.name, purpose)
        by_type = {model.event_type: (model, fn) for model, fn in handlers.items()}

        async def dispatch(session: AsyncSession, envelope: Envelope) -> None:
            entry = by_type.get(envelope.type)
            if entry is not None:
                model, fn = entry
                await fn(EventContext(self, session, envelope), envelope.payload_as(model))

        batch: BatchHandler | None = None
        if together is not None:
            apply = together

            async def dispatch_together(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
                await apply(BatchContext(self, session),
                            [(e, e.payload_as(by_type[e.type][0])) for e in envelopes if e.type in by_type])

            batch = dispatch_together

        self.bus.subscribe(
            group,
            topics,
            IdempotentHandler(group, self.sessions, self.definition.tables.inbox, dispatch, self.outbox.notify,
                              wants=lambda envelope: envelope.type in by_type,
                              together=batch),
        )

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        # The coroutine is the task itself (no wrapper), so a task cancelled before its first step
        # still closes it; a crash is logged when the task ends.
        task = asyncio.create_task(coro, name=f"{self.name}.{name}")
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def migrate(self) -> None:
        await upgrade(self.engine, self.definition.migrations)

    async def start(self, migrate: bool = False) -> None:
        if migrate:
            await self.migrate()
        self._state = await self.definition.setup(self) if self.definition.setup is not None else None  # type: ignore[assignment]
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


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=exc)


@dataclass(frozen=True)
class EventContext(Generic[SettingsT, StateT]):
    """What an event handler works with: the transaction its effect commits in (with the event's
    inbox record), the event's envelope, and the service, through which it emits events."""

    runtime: ServiceRuntime[SettingsT, StateT]
    session: AsyncSession
    envelope: Envelope

    async def emit(self, payload: EventPayload) -> Envelope:
        return await self.runtime.emit(self.session, payload)


@dataclass(frozen=True)
class BatchContext(Generic[SettingsT, StateT]):
    """What a handler of events fetched together works with: the one transaction they all commit
    in (with their inbox records) and the service."""

    runtime: ServiceRuntime[SettingsT, StateT]
    session: AsyncSession


EventT = TypeVar("EventT", bound=EventPayload, contravariant=True)


class EventHandler(Protocol[SettingsT, StateT, EventT]):
    def __call__(self, ctx: EventContext[SettingsT, StateT], event: EventT, /) -> Awaitable[None]: ...


class BatchEventHandler(Protocol[SettingsT, StateT]):
    def __call__(self, ctx: BatchContext[SettingsT, StateT],
                 events: Sequence[tuple[Envelope, EventPayload]], /) -> Awaitable[None]: ...


def runtime_dependency(name: str) -> Callable[[Request], ServiceRuntime[Any, Any]]:
    """The FastAPI dependency that finds service ``name``'s runtime; each service wraps it once in
    a typed alias, ``Runtime = Annotated[ServiceRuntime[MySettings, MyState], Depends(runtime_dependency("my"))]``."""

    def runtime(request: Request) -> ServiceRuntime[Any, Any]:
        found: ServiceRuntime[Any, Any] = request.app.state.runtimes[name]
        return found

    return runtime
