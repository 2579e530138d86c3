"""orchestrator-svc's own tables: pipelines and the desired state of their runs."""

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


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    streams: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    destination: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # {"cron": ..., "timezone": ...} as the API's ScheduleSpec stores it; null: manual runs only.
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    catchup: Mapped[str] = mapped_column(sa.String(8), default="last", server_default="last")
    # Ticks after this instant belong to the pipeline: set when its schedule changes (to then) and
    # when it is paused (so resuming catches up from the pause). Null: from the scheduler's next pass.
    ticks_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    # The scheduler need not look at the pipeline before then (its next tick, or a recheck); null: now.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    timeout_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    # The API's WorkerOptions (resources, node selector, tolerations, service account); null: the launcher's.
    worker: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # What a new run does while another of the pipeline is active: queue, skip or cancel_previous.
    overlap: Mapped[str] = mapped_column(sa.String(16), default="queue", server_default="queue")
    # {"max_attempts", "initial_delay_seconds", "max_delay_seconds"}; null: the documented defaults.
    retries: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    drift_policy: Mapped[dict[str, str] | None] = mapped_column(JSONType)  # see drift.py
    drift_failure: Mapped[str | None] = mapped_column(sa.Text)  # the next run fails with it (drift.py)
    # MaintenanceSpec as the API stores it; null: the defaults (maintenance.py).
    maintenance: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    maintained_at: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="Last successful full maintenance.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # A scheduled tick fires once, however many replicas or restarts see it.
        sa.UniqueConstraint("pipeline_id", "scheduled_for", name="uq_runs_pipeline_scheduled_for"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(24), index=True)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # The connection it reads, as it was when the run was queued: what the per-connection limit counts.
    connection_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    retry_of: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, doc="The failed run this attempt retries.")
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, doc="A retry's backoff ends then.")
    admitted_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, doc="When the run got a slot and its ``run.requested`` was sent; null while it waits.")
    waiting_reason: Mapped[str | None] = mapped_column(sa.Text, doc="Why a queued run still waits.")
    resync: Mapped[list[str] | None] = mapped_column(JSONType, doc="Streams a manual run resyncs.")
    maintenance: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, doc="A maintenance run's request (``MaintenanceRequest``); null for an ingestion run.")


class Dependency(Base):
    """``downstream`` waits for ``upstream``: one row per edge, and what the edge has seen of the
    upstream's runs (see ``docs/orchestration/dependencies.md``)."""

    __tablename__ = "pipeline_dependencies"

    downstream_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    # No cascade: deleting a pipeline others depend on is refused (409) before it gets here.
    upstream_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("pipelines.id"), primary_key=True, index=True)
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, doc="The upstream's latest ended run this edge took into account: a repeated "
                     "``run.finished`` of it changes nothing.")
    last_status: Mapped[str | None] = mapped_column(sa.String(24))
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfied: Mapped[bool] = mapped_column(
        sa.Boolean, default=False,
        doc="The upstream succeeded since the downstream's last run was requested.")


TABLES = messaging_tables(Base.metadata)
