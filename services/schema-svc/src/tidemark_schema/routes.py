"""/v1/schemas: watched connections and their schema snapshots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from tidemark_schema.deps import Runtime
from tidemark_schema.models import SchemaSnapshot, WatchedConnection

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])


class WatchedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    connection_id: uuid.UUID
    name: str
    connector_type: str
    active: bool
    updated_at: datetime


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connection_id: uuid.UUID
    taken_at: datetime
    fingerprint: str
    catalog: dict[str, Any]


@router.get("/connections")
async def watched_connections(rt: Runtime) -> list[WatchedOut]:
    async with rt.sessions() as session:
        rows = (await session.scalars(sa.select(WatchedConnection).order_by(WatchedConnection.name))).all()
    return [WatchedOut.model_validate(r) for r in rows]


@router.get("/connections/{connection_id}/snapshots")
async def snapshots(
    connection_id: uuid.UUID, rt: Runtime, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[SnapshotOut]:
    query = (
        sa.select(SchemaSnapshot)
        .where(SchemaSnapshot.connection_id == connection_id)
        .order_by(SchemaSnapshot.taken_at.desc())
        .limit(limit)
    )
    async with rt.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [SnapshotOut.model_validate(r) for r in rows]
