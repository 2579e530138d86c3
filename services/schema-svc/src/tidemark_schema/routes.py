"""/v1/schemas (watched connections, their snapshots and history, refresh) and /v1/drift."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, get_args

import sqlalchemy as sa
from fastapi import APIRouter, Query

from tidemark.api.openapi import problem_responses
from tidemark.errors import NotFoundError
from tidemark.events import SchemaChange
from tidemark_schema import poller
from tidemark_schema.deps import Runtime, SchemaRuntime
from tidemark_schema.models import DriftEvent, SchemaSnapshot, WatchedConnection
from tidemark_schema.schemas import DriftOut, HistoryEntry, RefreshOut, SnapshotOut, WatchedOut, WatchedUpdate

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])
drift = APIRouter(prefix="/v1/drift", tags=["drift"])

ChangeKind = SchemaChange.model_fields["kind"].annotation
KINDS: tuple[str, ...] = get_args(ChangeKind)


def _watched_out(rt: SchemaRuntime, row: WatchedConnection) -> WatchedOut:
    return WatchedOut(connection_id=row.connection_id, name=row.name, connector_type=row.connector_type,
                      active=row.active, updated_at=row.updated_at, poll_interval_seconds=poller.interval(rt, row),
                      fingerprint=row.fingerprint, last_polled_at=row.last_polled_at, next_poll_at=row.next_poll_at,
                      last_error=row.last_error)


@router.get("/connections")
async def watched_connections(rt: Runtime) -> list[WatchedOut]:
    async with rt.sessions() as session:
        rows = (await session.scalars(sa.select(WatchedConnection).order_by(WatchedConnection.name))).all()
    return [_watched_out(rt, r) for r in rows]


@router.patch("/connections/{connection_id}", responses=problem_responses(404))
async def update_watched(connection_id: uuid.UUID, body: WatchedUpdate, rt: Runtime) -> WatchedOut:
    async with rt.transaction() as session:
        row = await session.get(WatchedConnection, connection_id)
        if row is None:
            raise NotFoundError(f"connection {connection_id} is not watched", field="connection_id")
        row.poll_interval_seconds = body.poll_interval_seconds
        row.next_poll_at = None  # the new interval counts from a poll now
        out = _watched_out(rt, row)
    rt.state.wakeup.set()
    return out


@router.post("/connections/{connection_id}/refresh", responses=problem_responses(404, 422, 503))
async def refresh(connection_id: uuid.UUID, rt: Runtime) -> RefreshOut:
    """Poll the connection now: fingerprint, and discover and diff when it changed."""
    result = await poller.poll(rt, connection_id, trigger="refresh")
    found = None
    if result.drift_id is not None:
        async with rt.sessions() as session:
            row = await session.get(DriftEvent, result.drift_id)
            found = DriftOut.model_validate(row) if row is not None else None
    return RefreshOut(connection_id=connection_id, outcome=result.outcome, version=result.version, drift=found)


@router.get("/connections/{connection_id}/snapshots")
async def snapshots(
    connection_id: uuid.UUID, rt: Runtime, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[SnapshotOut]:
    query = (
        sa.select(SchemaSnapshot)
        .where(SchemaSnapshot.connection_id == connection_id)
        .order_by(SchemaSnapshot.version.desc())
        .limit(limit)
    )
    async with rt.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [SnapshotOut.model_validate(r) for r in rows]


@router.get("/connections/{connection_id}/history")
async def history(
    connection_id: uuid.UUID, rt: Runtime, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[HistoryEntry]:
    """Every snapshot version, newest first, with the changes from the version before."""
    query = (
        sa.select(SchemaSnapshot)
        .where(SchemaSnapshot.connection_id == connection_id)
        .order_by(SchemaSnapshot.version.desc())
        .limit(limit)
    )
    async with rt.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [HistoryEntry(id=r.id, version=r.version, taken_at=r.taken_at, fingerprint=r.fingerprint,
                         streams=len(r.catalog.get("streams", [])),
                         changes=[SchemaChange.model_validate(c) for c in r.changes] if r.changes is not None else None)
            for r in rows]


@drift.get("")
async def list_drift(
    rt: Runtime,
    connection_id: Annotated[uuid.UUID | None, Query(description="Only this connection's.")] = None,
    since: Annotated[datetime | None, Query(description="Detected at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Detected before (ISO 8601).")] = None,
    kind: Annotated[ChangeKind | None, Query(description="Only those with a change of this kind.")] = None,  # type: ignore[valid-type]
    breaking: Annotated[bool | None, Query(description="Only breaking (true) or non-breaking (false) ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DriftOut]:
    """Drift events, newest first."""
    query = sa.select(DriftEvent).order_by(DriftEvent.detected_at.desc()).limit(limit)
    if connection_id is not None:
        query = query.where(DriftEvent.connection_id == connection_id)
    if since is not None:
        query = query.where(DriftEvent.detected_at >= since)
    if until is not None:
        query = query.where(DriftEvent.detected_at < until)
    if kind is not None:
        query = query.where(DriftEvent.kinds.contains(f",{kind},"))
    if breaking is not None:
        query = query.where(DriftEvent.breaking.is_(breaking))
    async with rt.sessions() as session:
        return [DriftOut.model_validate(r) for r in (await session.scalars(query)).all()]


@drift.get("/{drift_id}", responses=problem_responses(404))
async def get_drift(drift_id: uuid.UUID, rt: Runtime) -> DriftOut:
    async with rt.sessions() as session:
        row = await session.get(DriftEvent, drift_id)
    if row is None:
        raise NotFoundError(f"drift event {drift_id} does not exist", field="drift_id")
    return DriftOut.model_validate(row)
