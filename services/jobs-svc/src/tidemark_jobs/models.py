"""jobs-svc's read model of runs, built only from ``run.*`` events.

``run_views`` holds one row per run; ``run_transitions`` every change of a run's state (and of why
a queued run waits) with its time and reason; ``run_totals`` the number of runs in each state (and
trigger), kept by the projection so the unfiltered counts and the metrics never scan the runs;
``pipeline_health`` each pipeline's last ending and last success; ``run_logs`` the worker's log
records, a bounded number per run.
"""

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
    __table_args__ = (
        sa.Index("ix_run_views_status_requested", "status", "requested_at"),
        # The list's default order, with and without a status filter, and within a pipeline; the
        # other sorts and the time ranges; the timeline picture.
        sa.Index("ix_run_views_status_order", "status", "list_order", "run_id"),
        sa.Index("ix_run_views_order", "list_order", "run_id"),
        sa.Index("ix_run_views_pipeline_order", "pipeline_id", "list_order", "run_id"),
        sa.Index("ix_run_views_scheduled", "scheduled_for"),
        sa.Index("ix_run_views_started", "started_at"),
        sa.Index("ix_run_views_finished", "finished_at"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    pipeline_name: Mapped[str | None] = mapped_column(sa.String(128))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    trigger: Mapped[str | None] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(24))
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    retry_of: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_reason: Mapped[str | None] = mapped_column(sa.Text)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_read: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_written: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    worker_ref: Mapped[str | None] = mapped_column(sa.String(255))
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_kind: Mapped[str | None] = mapped_column(sa.String(16))
    error_stream: Mapped[str | None] = mapped_column(sa.String(255))
    streams: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    log_records: Mapped[int] = mapped_column(sa.Integer, default=0)
    logs_dropped: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The default order as one non-null number, so every page is one index range: microseconds
    # since 1970 of the time the run was queued, or, for an upcoming run, minus those of its tick
    # (newest first puts upcoming runs after the others, the soonest first).
    list_order: Mapped[int] = mapped_column(sa.BigInteger)


class RunTransition(Base):
    __tablename__ = "run_transitions"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    status: Mapped[str] = mapped_column(sa.String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str | None] = mapped_column(sa.Text)


class RunTotal(Base):
    """Runs per status and trigger ('' while unknown); a row for each pair exists from the start."""

    __tablename__ = "run_totals"

    status: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    trigger: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class PipelineHealth(Base):
    """Per pipeline: its last ended run and its last success, for the time-since-success metric."""

    __tablename__ = "pipeline_health"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    last_status: Mapped[str] = mapped_column(sa.String(24))
    last_finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunLog(Base):
    __tablename__ = "run_logs"

    run_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    level: Mapped[str] = mapped_column(sa.String(16))
    logger: Mapped[str] = mapped_column(sa.String(128))
    message: Mapped[str] = mapped_column(sa.Text)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


TABLES = messaging_tables(Base.metadata)
