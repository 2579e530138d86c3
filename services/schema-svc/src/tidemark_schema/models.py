"""schema-svc's own tables: which connections it watches, their versioned schema snapshots and
the drift events found between them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tidemark.bus import messaging_tables
from tidemark.db import JSONType, UTCDateTime


class Base(DeclarativeBase):
    pass


class WatchedConnection(Base):
    """A projection of ``connection.changed``: the connections to poll for drift, and how polling goes."""

    __tablename__ = "watched_connections"

    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    connector_type: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    poll_interval_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class SchemaSnapshot(Base):
    """A connection's catalog as discovered; a new version only when it differs from the last one."""

    __tablename__ = "schema_snapshots"
    __table_args__ = (sa.UniqueConstraint("connection_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    catalog: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    changes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # from the version before


class DriftEvent(Base):
    """One change set between two snapshots of a connection: what ``schema.drift`` announced."""

    __tablename__ = "drift_events"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    snapshot_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    version: Mapped[int] = mapped_column(sa.Integer)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    trigger: Mapped[str] = mapped_column(sa.String(16))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    # `,column_added,type_changed,`: a kind filter is one LIKE on every database.
    kinds: Mapped[str] = mapped_column(sa.String(255))
    breaking: Mapped[bool] = mapped_column(sa.Boolean, index=True)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


TABLES = messaging_tables(Base.metadata)
