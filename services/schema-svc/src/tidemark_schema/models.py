"""schema-svc's own tables: which connections it watches and their schema snapshots."""

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
    """A projection of ``connection.changed``: the connections to poll for drift."""

    __tablename__ = "watched_connections"

    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    connector_type: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchemaSnapshot(Base):
    __tablename__ = "schema_snapshots"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    catalog: Mapped[dict[str, Any]] = mapped_column(JSONType)


TABLES = messaging_tables(Base.metadata)
