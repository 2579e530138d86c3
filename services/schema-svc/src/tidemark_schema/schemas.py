"""schema-svc's API bodies: strict in, plain out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tidemark.events import SchemaChange


class WatchedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    connection_id: uuid.UUID
    name: str
    connector_type: str
    active: bool
    updated_at: datetime
    poll_interval_seconds: int = Field(description="The interval in effect (its own, else the service's default).")
    fingerprint: str | None
    last_polled_at: datetime | None
    next_poll_at: datetime | None
    last_error: str | None


class WatchedUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_seconds: int | None = Field(
        ge=5, le=86400, description="Seconds between polls of this connection; null: the service's default.",
    )


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connection_id: uuid.UUID
    version: int
    taken_at: datetime
    fingerprint: str
    catalog: dict[str, Any]


class HistoryEntry(BaseModel):
    """One snapshot version and how it differs from the one before (none for version 1)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: int
    taken_at: datetime
    fingerprint: str
    streams: int
    changes: list[SchemaChange] | None


class DriftOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connection_id: uuid.UUID
    snapshot_id: uuid.UUID
    version: int
    detected_at: datetime
    trigger: str
    breaking: bool
    changes: list[SchemaChange]
    actions: list[dict[str, Any]] = Field(description="Automated responses taken because of this drift.")


class RefreshOut(BaseModel):
    connection_id: uuid.UUID
    outcome: str = Field(description="`unchanged` (fingerprint as before), `discovered` (first snapshot, or a "
                                     "catalog with no change), `changed` (a drift event, `drift`).")
    version: int | None
    drift: DriftOut | None = None
