"""jobs-svc's read model of runs, built only from ``run.*`` events."""

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


class RunView(Base):
    __tablename__ = "run_views"
    __table_args__ = (sa.Index("ix_run_views_status_requested", "status", "requested_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    pipeline_name: Mapped[str | None] = mapped_column(sa.String(128))
    trigger: Mapped[str | None] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(24))
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_read: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_written: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    worker_ref: Mapped[str | None] = mapped_column(sa.String(255))
    error: Mapped[str | None] = mapped_column(sa.Text)
    streams: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


TABLES = messaging_tables(Base.metadata)
