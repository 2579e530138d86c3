"""connector-svc's own tables: connections, their settings and their encrypted secrets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tidemark.bus import messaging_tables
from tidemark.db import JSONType, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    connector_type: Mapped[str] = mapped_column(sa.String(64))
    # Non-secret fields only; secret fields live in `secrets`, never here.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # A Fernet token of the JSON object of secret fields (see crypto.SecretBox).
    secrets: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


TABLES = messaging_tables(Base.metadata)
