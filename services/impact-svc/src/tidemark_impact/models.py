"""impact-svc's own tables: its projection of pipelines, the downstream registry, the drift events it
analysed with the actions they caused, alert rules and the alert history."""

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


class Downstream(Base):
    """Something outside Tidemark that reads one of our tables: a dashboard, a model, a table."""

    __tablename__ = "downstreams"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    table: Mapped[str] = mapped_column(sa.String(255), index=True)
    columns: Mapped[list[str] | None] = mapped_column(JSONType)
    url: Mapped[str | None] = mapped_column(sa.String(2048))
    owner: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    origin: Mapped[str] = mapped_column(sa.String(16), default="api")  # api, dbt, openlineage


class PipelineView(Base):
    """A projection of ``pipeline.changed``: what impact analysis needs of each pipeline."""

    __tablename__ = "pipelines"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    streams: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    destination: Mapped[dict[str, Any]] = mapped_column(JSONType)
    upstreams: Mapped[list[str]] = mapped_column(JSONType)
    drift_policy: Mapped[dict[str, str]] = mapped_column(JSONType)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Drift(Base):
    """A ``schema.drift`` event as received: the change set impact is computed for."""

    __tablename__ = "drifts"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)  # schema-svc's drift id
    connection_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    connection_name: Mapped[str | None] = mapped_column(sa.String(128))
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)


class DriftAction(Base):
    """An automated response to a drift, carried out (or asked of another service) by policy."""

    __tablename__ = "drift_actions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    drift_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    change_kind: Mapped[str] = mapped_column(sa.String(32))
    stream: Mapped[str] = mapped_column(sa.String(255))
    column: Mapped[str | None] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRule(Base):
    """Where alerts of drift go: by connection, pipeline and least severity, to a webhook."""

    __tablename__ = "alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    min_severity: Mapped[str] = mapped_column(sa.String(16))
    channel: Mapped[str] = mapped_column(sa.String(16))  # webhook or slack
    url: Mapped[str] = mapped_column(sa.String(2048))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    rule: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[str] = mapped_column(sa.Text)
    subject_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    channel: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # One alert per thing and rule, however often it is seen: `drift:<drift id>:<rule id>`.
    dedup_key: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    drift_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    delivery: Mapped[str] = mapped_column(sa.String(16), default="none")  # none, pending, sent, failed
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when a sender took it
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(200))


TABLES = messaging_tables(Base.metadata)
