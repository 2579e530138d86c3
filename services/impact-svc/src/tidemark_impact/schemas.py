from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from tidemark_impact.impact import ChangeImpact

TABLE_PATTERN = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$"


class DownstreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique name, e.g. `Revenue dashboard`.")
    kind: Literal["dashboard", "report", "model", "table", "job"] = Field(description="What reads the table.")
    table: str = Field(
        pattern=TABLE_PATTERN,
        max_length=255,  # the `downstreams.table` column
        description="The Tidemark table it reads, `namespace.table`.",
    )
    columns: list[str] | None = Field(default=None, description="Columns it reads, when known (lineage).")
    url: str | None = Field(default=None, max_length=2048)
    owner: str | None = Field(default=None, max_length=200)


class DownstreamOut(DownstreamCreate):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    origin: str = Field(description="How it was registered: `api`, `dbt` or `openlineage`.")
    created_at: datetime


class ImportOut(BaseModel):
    imported: list[DownstreamOut] = Field(description="Downstreams created or updated by the import.")


class DbtManifest(BaseModel):
    """The parts of a dbt ``manifest.json`` the import reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")

    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    exposures: dict[str, dict[str, Any]] = Field(default_factory=dict)


class OpenLineageDataset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: str = Field(max_length=1024)
    name: str = Field(max_length=1024)
    facets: dict[str, Any] = Field(default_factory=dict)


class OpenLineageJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: str = Field(max_length=512)
    name: str = Field(min_length=1, max_length=512)


class OpenLineageRunEvent(BaseModel):
    """An OpenLineage run event (https://openlineage.io/spec): its job, inputs and outputs."""

    model_config = ConfigDict(extra="ignore")

    eventType: str | None = Field(default=None, max_length=32)  # noqa: N815 - the spec's name
    job: OpenLineageJob
    inputs: list[OpenLineageDataset] = Field(default_factory=list)
    outputs: list[OpenLineageDataset] = Field(default_factory=list)


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique name.")
    connection_id: uuid.UUID | None = Field(default=None, description="Only drift of this connection; all when null.")
    pipeline_id: uuid.UUID | None = Field(
        default=None, description="Only drift that affects this pipeline; any when null.",
    )
    min_severity: Literal["info", "warning", "critical"] = Field(
        default="warning",
        description="Least severity that alerts: `critical` (breaks a pipeline), `warning` (affects one, or is "
                    "breaking in itself), `info` (anything).",
    )
    channel: Literal["webhook", "slack"] = Field(
        default="webhook", description="`webhook`: the alert as JSON; `slack`: a Slack-compatible `{\"text\"}`.",
    )
    url: AnyHttpUrl = Field(description="Where alerts are posted.")
    enabled: bool = True


class AlertRuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    connection_id: uuid.UUID | None
    pipeline_id: uuid.UUID | None
    min_severity: str
    channel: str
    url: str
    enabled: bool
    created_at: datetime


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule: str
    severity: str
    title: str
    subject_id: str
    channel: str
    created_at: datetime
    drift_id: uuid.UUID | None = None
    delivery: str = Field(description="`none` (history only), `pending`, `sending`, `sent` or `failed`.")
    attempts: int
    last_error: str | None = None
    delivered_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=200, description="Who acknowledges it.")


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pipeline_id: uuid.UUID
    change_kind: str
    stream: str
    column: str | None
    action: str
    detail: str
    created_at: datetime


class ImpactOut(BaseModel):
    drift_id: uuid.UUID
    connection_id: uuid.UUID
    detected_at: datetime
    breaking: bool = Field(description="Some change breaks some pipeline.")
    changes: list[ChangeImpact]
    actions: list[ActionOut] = Field(description="Automated responses the drift caused, by the pipelines' policies.")


class PipelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pipeline_id: uuid.UUID
    name: str
    connection_id: uuid.UUID
    status: str
    streams: list[dict[str, Any]]
    destination: dict[str, Any]
    upstreams: list[str]
    drift_policy: dict[str, str]
    updated_at: datetime


