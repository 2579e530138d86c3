"""Typed event payloads, versioned. Other platforms get them as JSON Schema (`make contracts`).

Adding an optional field keeps ``schema_version``; removing or retyping a field bumps it.

Wire models are tolerant, so that rule holds: every payload and everything inside it ignores
fields it does not know (an older consumer applies an event from a newer producer), and checks
types only, not style (patterns, lengths, rules between fields). Those checks belong to the API
that accepts a user's input: orchestrator-svc's pipeline bodies are strict models of their own,
converted to these in one place (``tidemark_orchestrator.specs``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tidemark.events.lifecycle import ErrorKind, RunStatus, Trigger
from tidemark.events.topics import Topic


class SyncMode(StrEnum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"
    INCREMENTAL_APPEND = "incremental_append"


class _Model(BaseModel):
    # Tolerant: a field added by a newer producer is ignored, not a reason to drop the event.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventPayload(_Model):
    """Base of every payload: its wire name, topic, version and the key that orders it."""

    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    schema_version: ClassVar[int] = 1

    def subject(self) -> str:
        raise NotImplementedError


class PartitionField(_Model):
    column: str = Field(description="Column the partition value is derived from.")
    transform: str = Field(
        default="identity",
        description="`identity`, `year`, `month`, `day`, `hour`, `bucket[N]` (N hash buckets) "
                    "or `truncate[W]` (values cut to width W).",
    )


class StreamSpec(_Model):
    name: str = Field(description="Stream name as the connector's catalog names it, e.g. `public.orders`.")
    sync_mode: SyncMode = Field(default=SyncMode.FULL_REFRESH, description="How the stream is loaded.")
    cursor_field: str | None = Field(default=None, description="Column that orders changes (incremental).")
    primary_key: list[str] = Field(default_factory=list, description="Key columns (incremental merge).")
    columns: list[str] | None = Field(default=None, description="Columns to load; all when absent.")
    lookback: int | None = Field(
        default=None,
        description="Incremental only: re-read rows this far before the last cursor, to catch late commits. "
                    "Seconds for date and timestamp cursors, cursor units for numeric ones.",
    )
    partition: list[PartitionField] | None = Field(
        default=None,
        description="Partition spec of the destination table, in order. Absent: keep the table's current spec "
                    "(a new table is unpartitioned); an empty list: unpartitioned from now on.",
    )


class DestinationSpec(_Model):
    kind: Literal["iceberg", "parquet"] = Field(default="iceberg", description="Table format.")
    namespace: str = Field(default="tidemark", description="Iceberg namespace (or Parquet directory).")
    table_prefix: str = Field(default="", description="Prefix added to every table name.")


QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$"
"""A non-negative Kubernetes quantity (``500m``, ``2``, ``1.5Gi``, ``1e3``); the API and the launcher's
settings check amounts against it, so a Job is never refused for one."""


class ResourceAmounts(_Model):
    cpu: str | None = Field(default=None, description="CPU as a Kubernetes quantity, e.g. `500m` or `2`.")
    memory: str | None = Field(default=None, description="Memory as a Kubernetes quantity, e.g. `512Mi` or `2Gi`.")


class WorkerResources(_Model):
    requests: ResourceAmounts | None = Field(default=None, description="What the worker's pod is scheduled with.")
    limits: ResourceAmounts | None = Field(default=None, description="What the worker's container may use at most.")


class Toleration(_Model):
    key: str | None = Field(default=None, description="The taint's key; absent with `Exists`: every taint.")
    operator: str = Field(default="Equal", description="`Equal` (key and value match) or `Exists` (key matches).")
    value: str | None = Field(default=None, description="The taint's value (`Equal` only).")
    effect: str | None = Field(
        default=None, description="`NoSchedule`, `PreferNoSchedule` or `NoExecute`; absent: every effect.",
    )
    toleration_seconds: int | None = Field(
        default=None, description="`NoExecute` only: how long the pod stays bound after the taint appears.",
    )


class WorkerOptions(_Model):
    """Where and with what a pipeline's worker runs (the Kubernetes launcher; the local one ignores it).
    Anything left out falls back to the launcher's settings."""

    resources: WorkerResources | None = Field(default=None, description="CPU and memory requests and limits.")
    node_selector: dict[str, str] | None = Field(default=None, description="Node labels the pod must run on.")
    tolerations: list[Toleration] | None = Field(default=None, description="Taints the pod tolerates.")
    service_account: str | None = Field(default=None, description="The service account the worker's pod runs as.")


MaintenanceAction = Literal["compact", "expire", "clean", "all"]


class MaintenancePolicy(_Model):
    """How a pipeline's tables are maintained (docs/maintenance.md); the defaults are on."""

    enabled: bool = Field(default=True, description="Schedule maintenance runs for the pipeline's tables.")
    compact_small_files: bool = Field(default=True, description="Rewrite small data files into larger ones.")
    compact_delete_files: bool = Field(default=True, description="Fold position-delete files into their data.")
    expire_days: float = Field(default=7, gt=0, le=3650, description="Keep snapshots younger than this.")
    keep_snapshots: int = Field(default=10, ge=1, le=10_000, description="Keep at least this many snapshots.")
    orphan_days: float = Field(default=3, gt=0, le=3650,
                               description="Delete unreferenced files only when older than this.")


class MaintenanceRequest(_Model):
    """What a maintenance run (trigger ``maintenance``) does instead of loading the streams."""

    action: MaintenanceAction = Field(default="all", description="`compact`, `expire`, `clean` or `all`.")
    table: str | None = Field(default=None, description="One of the pipeline's tables; null: all of them.")
    dry_run: bool = Field(default=False, description="Only report what would change.")


class MaintenanceStats(_Model):
    """What maintenance did to one table (or, in a dry run, would do)."""

    dry_run: bool = False
    actions: list[str] = Field(default_factory=list)
    data_files_before: int | None = None
    data_files_after: int | None = None
    delete_files_before: int | None = None
    delete_files_after: int | None = None
    files_rewritten: int = 0
    delete_files_folded: int = 0
    bytes_rewritten: int = 0
    compaction_abandoned: bool = False
    snapshots_expired: int = 0
    files_deleted: int = 0
    bytes_reclaimed: int = 0


class PipelineSpec(_Model):
    """Everything a worker needs to know about a pipeline, frozen at request time."""

    pipeline_id: UUID
    name: str
    connection_id: UUID
    streams: list[StreamSpec]
    destination: DestinationSpec
    worker: WorkerOptions | None = Field(default=None, description="Where and with what the worker runs.")
    maintenance: MaintenancePolicy = Field(default_factory=MaintenancePolicy,
                                           description="How the pipeline's tables are maintained.")


class RunError(_Model):
    message: str = Field(description="What went wrong, safe to show a user.")
    kind: ErrorKind = Field(description="Whether a retry can help.")
    stream: str | None = Field(default=None, description="The stream that failed, when one did.")


class StreamWarning(_Model):
    """Values a run converted by a documented rule instead of loading them as they were."""

    kind: str = Field(
        description="`value_as_null` (a value with no Arrow form, e.g. a zero date or NaN, read as NULL), "
                    "`type_as_text` (a column whose type has no exact Arrow form, read as text), "
                    "`text_replaced` (bytes that are not UTF-8 in a text column, invalid bytes replaced), "
                    "`file_skipped` (a file source skipped a bad file under `on_bad_file: skip`; one per file), "
                    "`columns_ignored` (a file had columns the stream's schema does not have yet).",
    )
    column: str | None = Field(default=None, description="The column, when the conversion is a column's.")
    count: int = Field(default=0, ge=0, description="Values converted; 0 when it applies to the whole column.")
    message: str = Field(description="The rule, in words.")


class Reconciliation(_Model):
    """The counts a run checked for one stream before committing it; they must all be equal."""

    rows_read: int = Field(description="Rows the source's reader yielded.")
    rows_committed: int | None = Field(
        default=None, description="Rows in the data the commit adds (Iceberg data files, Parquet files); for a merge "
                    "(`incremental`), the rows the merge received; null when the check stopped before.",
    )
    source_rows: int | None = Field(
        default=None, description="Rows the source held for this read, counted in the same snapshot as the read "
                                  "(PostgreSQL, MySQL/MariaDB over PyMySQL); null when the source cannot count so.",
    )
    table_rows: int | None = Field(
        default=None, description="Full refresh: the table's row count as of the commit; null for other modes.",
    )
    ok: bool = Field(description="Whether every count agreed (a stream whose counts disagree is not committed).")


class StreamStats(_Model):
    stream: str
    table: str = Field(description="Destination table identifier.")
    status: Literal["succeeded", "failed"]
    rows_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    duration_seconds: float = 0.0
    snapshot_id: int | None = Field(default=None, description="Iceberg snapshot committed by this run.")
    error: RunError | None = None
    warnings: list[StreamWarning] = Field(
        default_factory=list, description="Each kind of conversion the stream's values went through, with its count.",
    )
    cursor_before: str | None = Field(
        default=None, description="Incremental state the run started from (the cursor value as text), when any.",
    )
    cursor_after: str | None = Field(
        default=None, description="Incremental state the run committed with its data, when any.",
    )
    maintenance: MaintenanceStats | None = Field(
        default=None, description="A maintenance run's work on the table; null for an ingestion run.",
    )
    data_files: int | None = Field(
        default=None, description="Data files of the table after the run (Iceberg), for automatic compaction.",
    )
    delete_files: int | None = Field(
        default=None, description="Position-delete files of the table after the run (Iceberg).",
    )
    table_bytes: int | None = Field(
        default=None, description="Bytes of the table's data and delete files after the run (Iceberg).",
    )
    reconciliation: Reconciliation | None = Field(
        default=None, description="The row counts checked before the commit; null when the stream failed "
                                  "before its read ended.",
    )


class RunRequested(EventPayload):
    event_type: ClassVar[str] = "run.requested"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline: PipelineSpec
    trigger: Trigger
    scheduled_for: datetime | None = None
    attempt: int = 1
    retry_of: UUID | None = Field(default=None, description="The failed run this attempt retries.")
    resync: list[str] = Field(
        default_factory=list,
        description="Streams whose state is reset: read in full and rewritten, then incremental again.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        description="The pipeline's limit: a run still running this long after its worker started is "
                    "stopped and ends `failed` (error starting `timeout`). None: no limit.",
    )
    maintenance: MaintenanceRequest | None = Field(
        default=None, description="Set for a maintenance run (trigger `maintenance`): what to do instead of loading.",
    )

    def subject(self) -> str:
        return str(self.run_id)


class RunQueued(EventPayload):
    """A run exists and waits to be started: ``run.requested`` with the same ``run_id`` follows when
    the orchestrator admits it (no other run of its pipeline going, a free slot under the global and
    the connection's limits, a retry's backoff over). Also when an upcoming run becomes due."""

    event_type: ClassVar[str] = "run.queued"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    pipeline_name: str
    connection_id: UUID
    trigger: Trigger
    attempt: int = 1
    retry_of: UUID | None = Field(default=None, description="The failed run this attempt retries.")
    scheduled_for: datetime | None = Field(default=None, description="The tick, for a scheduled run.")
    not_before: datetime | None = Field(default=None, description="A retry waits for its backoff until then.")
    reason: str | None = Field(default=None, description="Why it waits, when it cannot start at once.")

    def subject(self) -> str:
        return str(self.run_id)


class RunWaiting(EventPayload):
    """Why a queued run still waits changed (e.g. `waiting for a slot: 2 of 2 runs of connection X
    are active`). The last one is the current reason; ``run.requested`` ends the wait."""

    event_type: ClassVar[str] = "run.waiting"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    reason: str

    def subject(self) -> str:
        return str(self.run_id)


class RunScheduled(EventPayload):
    """A schedule tick the orchestrator has stored as an upcoming run; ``run.requested`` with the
    same ``run_id`` follows when it is due (or ``run.unscheduled`` when it is withdrawn first)."""

    event_type: ClassVar[str] = "run.scheduled"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    pipeline_name: str
    scheduled_for: datetime = Field(description="The tick's instant (UTC).")
    trigger: Trigger = "schedule"

    def subject(self) -> str:
        return str(self.run_id)


class RunUnscheduled(EventPayload):
    """An upcoming run withdrawn before it was due (its schedule changed, or the pipeline was paused
    or deleted): it never existed as a run, so read models drop it."""

    event_type: ClassVar[str] = "run.unscheduled"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    scheduled_for: datetime
    reason: str = Field(description="Why, e.g. `schedule changed`, `pipeline paused`, `pipeline deleted`.")

    def subject(self) -> str:
        return str(self.run_id)


class RunStarted(EventPayload):
    event_type: ClassVar[str] = "run.started"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    launcher: str = Field(description="`local` or `kubernetes`.")
    worker_ref: str = Field(description="Process id or Kubernetes Job name.")

    def subject(self) -> str:
        return str(self.run_id)


class RunProgress(EventPayload):
    event_type: ClassVar[str] = "run.progress"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    stream: str
    rows_read: int

    def subject(self) -> str:
        return str(self.run_id)


class RunFinished(EventPayload):
    event_type: ClassVar[str] = "run.finished"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    status: RunStatus
    streams: list[StreamStats] = Field(default_factory=list)
    error: RunError | None = None

    def subject(self) -> str:
        return str(self.run_id)

    @property
    def rows_written(self) -> int:
        return sum(s.rows_written for s in self.streams)


class LogRecord(_Model):
    """One structured log record of a run's worker, secrets already scrubbed."""

    seq: int = Field(description="Position in the run's log, from 0, numbered by the worker.")
    at: datetime
    level: str = Field(description="`debug`, `info`, `warning`, `error` or `critical`.")
    logger: str
    message: str
    fields: dict[str, Any] = Field(default_factory=dict, description="Structured context (stream, rows, ...).")


class RunLogged(EventPayload):
    """A batch of the worker's log records, shipped with its heartbeat and at its end, so logs
    reach jobs-svc from any launcher (a Kubernetes Job shares no disk with it). Bounded: a batch
    holds at most a few hundred records, each message cut to a few kilobytes."""

    event_type: ClassVar[str] = "run.log"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    records: list[LogRecord] = Field(default_factory=list)
    dropped: int = Field(default=0, description="Records the worker dropped since the last batch (buffer full).")

    def subject(self) -> str:
        return str(self.run_id)


class RunCancelRequested(EventPayload):
    """A user (or a rule) asked to stop a run that is starting or running. The service that runs
    workers stops it and ends the run ``cancelled`` with a ``run.finished``; a run that ended first
    keeps its ending. A queued run needs no request: it is ended ``cancelled`` at once."""

    event_type: ClassVar[str] = "run.cancel_requested"
    topic: ClassVar[Topic] = Topic.RUNS

    run_id: UUID
    pipeline_id: UUID
    reason: str = Field(default="cancelled by user", description="Why, safe to show a user; the run's error.")

    def subject(self) -> str:
        return str(self.run_id)


class ConnectionChanged(EventPayload):
    event_type: ClassVar[str] = "connection.changed"
    topic: ClassVar[Topic] = Topic.CONNECTIONS

    connection_id: UUID
    name: str
    connector_type: str
    change: Literal["created", "updated", "deleted"]

    def subject(self) -> str:
        return str(self.connection_id)


class SchemaChange(_Model):
    kind: Literal[
        "stream_added", "stream_removed", "column_added", "column_removed", "column_renamed",
        "type_changed", "nullability_changed", "primary_key_changed", "default_changed",
    ]
    stream: str
    column: str | None = Field(default=None, description="The column; for `column_renamed`, its new name.")
    before: str | None = None
    after: str | None = None
    breaking: bool = Field(
        default=False,
        description="The change can break a reader whatever it reads: a stream or column removed or renamed, "
                    "a type narrowed or changed incompatibly, a key changed. impact-svc refines it per pipeline.",
    )
    type_change: Literal["widening", "narrowing", "incompatible"] | None = Field(
        default=None, description="For `type_changed`: whether the old values fit the new type.",
    )
    stream_columns: list[str] | None = Field(
        default=None, description="For column changes: the stream's columns before the change, in order.",
    )
    probable: bool = Field(
        default=False,
        description="An inference, not a fact the catalog states (a rename: a column dropped and one of the "
                    "same type added at the same position).",
    )


class SchemaDriftDetected(EventPayload):
    event_type: ClassVar[str] = "schema.drift"
    topic: ClassVar[Topic] = Topic.SCHEMA

    connection_id: UUID
    snapshot_id: UUID
    changes: list[SchemaChange]
    drift_id: UUID | None = Field(default=None, description="The drift event's id in schema-svc (`/v1/drift/{id}`).")
    version: int | None = Field(default=None, description="Version of the snapshot that shows the change.")
    detected_at: datetime | None = None
    connection_name: str | None = None

    def subject(self) -> str:
        return str(self.connection_id)


class DriftActionRecorded(EventPayload):
    """impact-svc answered a drift by a pipeline's policy (or asked orchestrator-svc to): schema-svc
    shows it with the drift (``GET /v1/drift/{id}``)."""

    event_type: ClassVar[str] = "schema.drift_action"
    topic: ClassVar[Topic] = Topic.SCHEMA

    action_id: UUID
    drift_id: UUID
    connection_id: UUID
    pipeline_id: UUID
    action: str = Field(description="`propagate`, `ignore`, `pause`, `fail`, `add_stream` or `create_pipeline`.")
    change_kind: str
    stream: str
    column: str | None = None
    detail: str = Field(description="What was done, in words.")
    at: datetime

    def subject(self) -> str:
        return str(self.connection_id)


class AlertSent(EventPayload):
    event_type: ClassVar[str] = "alert.sent"
    topic: ClassVar[Topic] = Topic.ALERTS

    alert_id: UUID
    rule: str
    channel: str
    title: str
    severity: Literal["info", "warning", "critical"]
    subject_id: str = Field(description="What the alert is about: a connection, pipeline or run id.")

    def subject(self) -> str:
        return self.subject_id


class ScheduleInfo(_Model):
    cron: str
    timezone: str = "UTC"


class RetryPolicy(_Model):
    max_attempts: int = Field(description="Attempts in all, the first included; 1: no retries.")
    initial_delay_seconds: float
    max_delay_seconds: float


class PipelineChanged(EventPayload):
    """A pipeline was created, changed, paused, resumed or deleted, with its whole definition after
    the change (before it, for ``deleted``), so other services keep their own projection of
    pipelines instead of asking orchestrator-svc."""

    event_type: ClassVar[str] = "pipeline.changed"
    topic: ClassVar[Topic] = Topic.PIPELINES

    pipeline_id: UUID
    change: Literal["created", "updated", "paused", "resumed", "deleted"]
    pipeline: PipelineSpec
    status: Literal["active", "paused"]
    schedule: ScheduleInfo | None = None
    upstreams: list[UUID] = Field(default_factory=list, description="Pipelines this one runs after.")
    catchup: str = "last"
    overlap: str = "queue"
    retries: RetryPolicy | None = None
    timeout_seconds: int | None = None
    drift_policy: dict[str, str] = Field(
        default_factory=dict,
        description="What a schema change does to the pipeline, per change kind (`column_added`, "
                    "`column_removed`, `column_renamed`, `type_changed`, `table_added`, `table_removed`): "
                    "`propagate`, `ignore`, `pause`, `fail`, `add_stream` or `create_pipeline`.",
    )

    def subject(self) -> str:
        return str(self.pipeline_id)


class PipelinePauseRequested(EventPayload):
    event_type: ClassVar[str] = "pipeline.pause_requested"
    topic: ClassVar[Topic] = Topic.PIPELINES

    pipeline_id: UUID
    reason: str
    cause_event_id: UUID | None = None

    def subject(self) -> str:
        return str(self.pipeline_id)


class PipelineDriftActionRequested(EventPayload):
    """impact-svc asks orchestrator-svc to answer a schema drift by a pipeline's ``drift_policy``:
    ``fail`` (the next run fails with ``reason``), ``ignore`` (the stream keeps loading ``columns``,
    the ones it had before), ``add_stream`` (the pipeline loads ``stream`` too) or ``create_pipeline``
    (a new pipeline loads ``stream`` with this one's settings). A pause is ``pipeline.pause_requested``."""

    event_type: ClassVar[str] = "pipeline.drift_action_requested"
    topic: ClassVar[Topic] = Topic.PIPELINES

    pipeline_id: UUID
    action: Literal["fail", "ignore", "add_stream", "create_pipeline"]
    reason: str
    stream: str | None = Field(default=None, description="The stream the change is about.")
    columns: list[str] | None = Field(default=None, description="For `ignore`: the columns to keep loading.")
    cause_event_id: UUID | None = Field(default=None, description="The `schema.drift` event.")
    drift_id: UUID | None = None

    def subject(self) -> str:
        return str(self.pipeline_id)


class TokenCreated(EventPayload):
    """An admin created an API token (connector-svc owns `/v1/tokens`). Carries the token's SHA-256
    digest, never its value: every service adds it to its own table of accepted tokens."""

    event_type: ClassVar[str] = "token.created"
    topic: ClassVar[Topic] = Topic.ACCESS

    token_id: UUID
    name: str
    scope: Literal["read", "write", "admin"]
    digest: str = Field(description="SHA-256 hex digest of the token.", pattern=r"^[0-9a-f]{64}$")
    created_at: datetime

    def subject(self) -> str:
        return str(self.token_id)


class TokenRevoked(EventPayload):
    """An admin revoked an API token: every service refuses it from then on (revocation is final)."""

    event_type: ClassVar[str] = "token.revoked"
    topic: ClassVar[Topic] = Topic.ACCESS

    token_id: UUID
    name: str
    scope: Literal["read", "write", "admin"]
    digest: str = Field(description="SHA-256 hex digest of the token.", pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    revoked_at: datetime

    def subject(self) -> str:
        return str(self.token_id)


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type: cls
    for cls in (
        RunScheduled, RunUnscheduled, RunQueued, RunWaiting, RunRequested, RunStarted, RunProgress, RunFinished,
        RunCancelRequested, RunLogged,
        ConnectionChanged,
        SchemaDriftDetected, DriftActionRecorded, AlertSent,
        PipelineChanged, PipelinePauseRequested, PipelineDriftActionRequested,
        TokenCreated, TokenRevoked,
    )
}
