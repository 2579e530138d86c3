"""Polling a watched connection: the fingerprint first, a full discover only when it changed, a
new snapshot version and one ``schema.drift`` event per change set.

A poll reads the source in a worker thread (drivers block) through the shared connector code,
with the connection's config from connector-svc's internal route."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.aio import wait_for_event
from tidemark.connectors import Catalog, Source, get_connector
from tidemark.connectors.client import afetch_connection_config
from tidemark.connectors.diff import diff_catalogs
from tidemark.connectors.sql.fingerprint import digest
from tidemark.db import utcnow
from tidemark.errors import ConfigError, NotFoundError, TidemarkError
from tidemark.events import SchemaChange, SchemaDriftDetected
from tidemark.ids import new_id
from tidemark.logs import fields
from tidemark_schema.deps import SchemaRuntime
from tidemark_schema.metrics import DRIFT_EVENTS, SCHEMA_POLL_DURATION, SCHEMA_POLLS
from tidemark_schema.models import DriftEvent, SchemaSnapshot, WatchedConnection

log = logging.getLogger("tidemark.schema")


@dataclass(frozen=True)
class PollResult:
    connection_id: uuid.UUID
    outcome: str  # unchanged, changed, discovered (first snapshot, or a fingerprint-only change)
    version: int | None
    drift_id: uuid.UUID | None = None


async def poll(runtime: SchemaRuntime, connection_id: uuid.UUID, trigger: str = "poll") -> PollResult:
    """Poll one connection now. Raises :class:`NotFoundError` for a connection not watched, and the
    source's or connector-svc's classified error when it cannot be read (also kept as ``last_error``)."""
    async with runtime.state.lock(connection_id):
        started = time.perf_counter()
        try:
            result = await _poll(runtime, connection_id, trigger)
        except NotFoundError:
            raise
        except TidemarkError as exc:
            SCHEMA_POLLS.labels(outcome="failed").inc()
            await _record_failure(runtime, connection_id, exc.message)
            raise
        SCHEMA_POLLS.labels(outcome=result.outcome).inc()
        SCHEMA_POLL_DURATION.observe(time.perf_counter() - started)
        return result


async def _poll(runtime: SchemaRuntime, connection_id: uuid.UUID, trigger: str) -> PollResult:
    async with runtime.sessions() as session:
        watched = await session.get(WatchedConnection, connection_id)
        if watched is None or not watched.active:
            raise NotFoundError(f"connection {connection_id} is not watched", field="connection_id")
        known_fingerprint, updated_at, connector_type = watched.fingerprint, watched.updated_at, watched.connector_type
        latest = await _latest(session, connection_id)
    source = await _source(runtime, connection_id, connector_type, updated_at)
    fingerprint = await asyncio.to_thread(source.fingerprint)
    if fingerprint is not None and fingerprint == known_fingerprint and latest is not None:
        async with runtime.transaction() as session:
            await _polled(runtime, session, connection_id, fingerprint)
        return PollResult(connection_id, "unchanged", latest.version)
    catalog = await asyncio.to_thread(source.discover)
    # A source without a cheap fingerprint is compared by its whole catalog.
    fingerprint = fingerprint or digest([catalog.model_dump_json()])
    try:
        async with runtime.transaction() as session:
            return await _record(runtime, session, connection_id, catalog, fingerprint, trigger)
    except IntegrityError:
        # Another replica stored this version first; its event stands.
        return PollResult(connection_id, "unchanged", None)


async def _record(runtime: SchemaRuntime, session: AsyncSession, connection_id: uuid.UUID, catalog: Catalog,
                  fingerprint: str, trigger: str) -> PollResult:
    now = utcnow()
    watched = await _polled(runtime, session, connection_id, fingerprint)
    latest = await _latest(session, connection_id)
    changes = diff_catalogs(Catalog.model_validate(latest.catalog), catalog) if latest is not None else []
    if latest is not None and not changes:
        return PollResult(connection_id, "discovered", latest.version)
    version = 1 if latest is None else latest.version + 1
    snapshot = SchemaSnapshot(id=new_id(), connection_id=connection_id, taken_at=now, fingerprint=fingerprint,
                              catalog=catalog.model_dump(mode="json"), version=version,
                              changes=[c.model_dump(mode="json") for c in changes] if latest else None)
    session.add(snapshot)
    if latest is None:
        return PollResult(connection_id, "discovered", version)
    drift = DriftEvent(id=new_id(), connection_id=connection_id, snapshot_id=snapshot.id, version=version,
                       detected_at=now, trigger=trigger, changes=snapshot.changes or [],
                       kinds="," + ",".join(sorted({c.kind for c in changes})) + ",",
                       breaking=any(c.breaking for c in changes), actions=[])
    session.add(drift)
    await session.flush()
    await runtime.emit(session, drift_event(drift, changes, watched.name))
    DRIFT_EVENTS.labels(breaking=str(drift.breaking).lower()).inc()
    log.info("schema drift detected", extra=fields(connection_id=str(connection_id), drift_id=str(drift.id),
                                                   version=version, changes=len(changes)))
    return PollResult(connection_id, "changed", version, drift.id)


def drift_event(drift: DriftEvent, changes: list[SchemaChange], connection_name: str) -> SchemaDriftDetected:
    return SchemaDriftDetected(connection_id=drift.connection_id, snapshot_id=drift.snapshot_id, changes=changes,
                               drift_id=drift.id, version=drift.version, detected_at=drift.detected_at,
                               connection_name=connection_name)


async def _latest(session: AsyncSession, connection_id: uuid.UUID) -> SchemaSnapshot | None:
    query = (sa.select(SchemaSnapshot).where(SchemaSnapshot.connection_id == connection_id)
             .order_by(SchemaSnapshot.version.desc()).limit(1))
    return (await session.scalars(query)).first()


async def _polled(runtime: SchemaRuntime, session: AsyncSession, connection_id: uuid.UUID,
                  fingerprint: str | None) -> WatchedConnection:
    watched = await session.get(WatchedConnection, connection_id)
    if watched is None:
        raise NotFoundError(f"connection {connection_id} is not watched", field="connection_id")
    now = utcnow()
    watched.fingerprint = fingerprint
    watched.last_polled_at = now
    watched.last_error = None
    watched.next_poll_at = now + timedelta(seconds=interval(runtime, watched))
    return watched


async def _record_failure(runtime: SchemaRuntime, connection_id: uuid.UUID, message: str) -> None:
    async with runtime.transaction() as session:
        watched = await session.get(WatchedConnection, connection_id)
        if watched is not None:
            watched.last_error = message
            watched.next_poll_at = utcnow() + timedelta(seconds=interval(runtime, watched))


def interval(runtime: SchemaRuntime, watched: WatchedConnection) -> int:
    return watched.poll_interval_seconds or runtime.settings.poll_interval_seconds


async def _source(runtime: SchemaRuntime, connection_id: uuid.UUID, connector_type: str,
                  updated_at: datetime) -> Source:
    """The connection's source, built once per version of the connection (its config changes with it)."""
    cached = runtime.state.sources.get(connection_id)
    if cached is not None and cached[0] == updated_at:
        return cached[1]
    token = runtime.settings.platform.internal_token
    if token is None:
        raise ConfigError("TIDEMARK_INTERNAL_TOKEN is not set, so schema-svc cannot read connections' configs")
    kind, config = await afetch_connection_config(runtime.settings.connector_url, token.get_secret_value(),
                                                  connection_id, client=runtime.state.http)
    source_type = get_connector(kind)
    source = source_type(source_type.config_model.model_validate(config))
    if cached is not None:
        await asyncio.to_thread(cached[1].close)
    runtime.state.sources[connection_id] = (updated_at, source)
    return source


async def run_poller(runtime: SchemaRuntime, wakeup: asyncio.Event) -> None:
    """Poll every watched connection when it is due, a few at a time, until cancelled. A connection
    that fails is logged and retried at its next interval; it never holds up the others."""
    limit = asyncio.Semaphore(runtime.settings.max_concurrent_polls)
    running: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def one(connection_id: uuid.UUID) -> None:
        async with limit:
            try:
                await poll(runtime, connection_id)
            except TidemarkError as exc:
                log.warning("schema poll failed: %s", exc.message, extra=fields(connection_id=str(connection_id)))
            except Exception:
                log.exception("schema poll crashed", extra=fields(connection_id=str(connection_id)))
            finally:
                running.pop(connection_id, None)

    try:
        while True:
            now = utcnow()
            async with runtime.sessions() as session:
                due = (await session.scalars(
                    sa.select(WatchedConnection.connection_id).where(
                        WatchedConnection.active.is_(True),
                        sa.or_(WatchedConnection.next_poll_at.is_(None), WatchedConnection.next_poll_at <= now),
                    )
                )).all()
            for connection_id in due:
                if connection_id not in running:
                    running[connection_id] = asyncio.create_task(one(connection_id), name=f"poll-{connection_id}")
            await wait_for_event(wakeup, runtime.settings.poll_tick_seconds)
            wakeup.clear()
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
