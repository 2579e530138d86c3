"""ingest-svc's own tables: one row per run it launched, written by the service and its worker."""

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


class WorkerRun(Base):
    __tablename__ = "worker_runs"

    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    # The `run.requested` payload as received: the worker needs nothing else to do the run.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(24), index=True)
    launcher: Mapped[str] = mapped_column(sa.String(32))
    worker_ref: Mapped[str | None] = mapped_column(sa.String(253))
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Set when someone asked to stop the run (`run.cancel_requested`): the reason it ends with, so a
    # worker stopped for it ends the run `cancelled` rather than failed, whoever sees the exit first.
    cancel_reason: Mapped[str | None] = mapped_column(sa.Text)
    # Per-stream StreamStats as JSON, filled when the run finishes.
    stats: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


TABLES = messaging_tables(Base.metadata)
