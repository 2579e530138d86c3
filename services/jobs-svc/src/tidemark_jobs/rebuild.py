"""Rebuilding the read model: the runs topic replayed into an empty database, through the same
handlers (and the same idempotent inbox) the live consumer uses, so the result is what a live
jobs-svc would have built from those events. The access topic is replayed too: a fresh database
would otherwise not know the tokens issued through the API (jobs-svc's consumer group is past them).

``tidemark-jobs-svc rebuild`` replays into the database jobs-svc is configured with; it refuses
one that already holds runs. Procedure (docs/jobs.md): stop jobs-svc, drop and recreate its
database (or point it at a new one), run the command, start jobs-svc.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator

import sqlalchemy as sa

from tidemark.access import projection as issued_tokens
from tidemark.bus import MemoryBus
from tidemark.bus.replay import replay
from tidemark.errors import ConfigError
from tidemark.events import EVENT_TYPES, Envelope, Topic
from tidemark.service import ServiceRuntime
from tidemark_jobs.app import DEFINITION, HANDLERS
from tidemark_jobs.models import RunView
from tidemark_jobs.settings import JobsSettings

log = logging.getLogger(__name__)
BATCH = 500


async def rebuild(settings: JobsSettings, events: AsyncIterable[Envelope]) -> int:
    """Apply ``events`` to the (empty) read model of ``settings.database``; the number applied."""
    bus = MemoryBus()
    runtime = ServiceRuntime(DEFINITION, settings, bus)
    try:
        await runtime.migrate()
        async with runtime.sessions() as session:
            if await session.scalar(sa.select(sa.func.count()).select_from(RunView)):
                raise ConfigError("the read model is not empty: rebuild into an empty database "
                                  "(drop and recreate jobs-svc's database first)")
        runtime.consume("runs", [Topic.RUNS], HANDLERS)
        issued_tokens.subscribe(runtime, issued_tokens.TokenProjection(runtime))
        await bus.start()
        applied = 0
        async for envelope in events:
            known = EVENT_TYPES.get(envelope.type)
            await bus.publish(known.topic if known is not None else Topic.RUNS, envelope)
            applied += 1
            if applied % BATCH == 0:
                await bus.drain()
        await bus.drain()
        return applied
    finally:
        await bus.stop()
        await runtime.engine.dispose()


async def _runs_then_access(settings: JobsSettings) -> AsyncIterator[Envelope]:
    for topic in (Topic.RUNS, Topic.ACCESS):
        async for envelope in replay(settings.kafka, topic, client_id="tidemark-jobs-rebuild"):
            yield envelope


async def rebuild_from_kafka(settings: JobsSettings) -> int:
    applied = await rebuild(settings, _runs_then_access(settings))
    log.info("read model rebuilt", extra={"fields": {"events": applied}})
    return applied
