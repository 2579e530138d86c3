"""The orchestrator's API models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tidemark.api.bodies import FieldError, Omittable, drop_null_defaults, field_errors
from tidemark.events import RunStatus, SyncMode
from tidemark_orchestrator.schedule import ScheduleError, cron_problem, zone
from tidemark_orchestrator.specs import WORKER_DOC, DestinationSpec, StreamSpec, WorkerOptions

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
UpstreamRef = Annotated[str, Field(min_length=1, max_length=128)]
UPSTREAMS = (
    "Pipelines (ids or names) this one waits for: when each of them has succeeded since this "
    "pipeline's last run, a run is requested with trigger `dependency`. Stored as ids; a cycle is a 422."
)
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
TIMEOUT_DOC = ("Longest a run may run (from its worker's start), in seconds: a run still running after it is "
               "stopped and ends `failed` with an error starting `timeout`. None: no limit.")


# Every run's events carry one entry per stream (run.finished ~0.4 KB each): past a few thousand they would
# outgrow a Kafka message (1 MB by default) and the outbox could not publish them.
MAX_STREAMS = 1000


def stream_errors(streams: Sequence[StreamSpec]) -> Iterator[FieldError]:
    """What is wrong with a pipeline's streams taken together, each at its field's path."""
    seen: set[str] = set()
    for i, s in enumerate(streams):
        if s.name in seen:
            yield FieldError(("streams", i, "name"), f"stream {s.name!r} is listed twice", "duplicate", s.name)
        seen.add(s.name)
        if s.sync_mode is SyncMode.INCREMENTAL and not s.primary_key:
            yield FieldError(
                ("streams", i, "primary_key"),
                f"stream {s.name!r}: incremental needs a primary_key to merge on",
                "required_by_sync_mode",
                s.primary_key,
            )
        if s.sync_mode in (SyncMode.INCREMENTAL, SyncMode.INCREMENTAL_APPEND) and not s.cursor_field:
            yield FieldError(
                ("streams", i, "cursor_field"),
                f"stream {s.name!r}: {s.sync_mode.value} needs a cursor_field",
                "required_by_sync_mode",
                s.cursor_field,
            )


def check_streams(model: BaseModel, streams: Sequence[StreamSpec]) -> None:
    errors = list(stream_errors(streams))
    if errors:
        raise field_errors(type(model).__name__, errors)


Catchup = Literal["last", "all", "none"]

ColumnResponse = Literal["propagate", "ignore", "pause", "fail"]
RemovalResponse = Literal["ignore", "pause", "fail"]


class DriftPolicy(BaseModel):
    """What a schema change of the pipeline's source does to it, per change kind; a kind left out
    only alerts. impact-svc carries it out when schema-svc reports the change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_null_defaults)

    column_added: ColumnResponse | None = Field(
        default=None, description="`propagate`: the table gets the column; `ignore`: it does not.")
    column_removed: RemovalResponse | None = Field(default=None, description="A column the source dropped.")
    column_renamed: RemovalResponse | None = Field(
        default=None, description="A probable rename; when left out, `column_removed` applies.")
    type_changed: ColumnResponse | None = Field(
        default=None, description="`propagate` widens the table's column (int→long, float→double, decimal up).")
    table_added: Literal["add_stream", "create_pipeline", "ignore", "pause"] | None = Field(
        default=None, description="`add_stream`: a pipeline selecting a whole schema (`public.*`) loads it.")
    table_removed: RemovalResponse | None = Field(default=None, description="A table the pipeline loads is gone.")


CATCHUP_DOC = (
    "Ticks missed while the orchestrator was down or the pipeline paused: `last` (default) runs the "
    "latest one, `all` runs each of them in order (the 100 most recent), `none` runs none."
)


Overlap = Literal["queue", "skip", "cancel_previous"]
OVERLAP_DOC = (
    "A new run (manual or scheduled) while another run of this pipeline is active: `queue` (default) "
    "waits for it to end (at most one run waits), `skip` is refused (a manual trigger gets a 409, a "
    "tick ends `cancelled`), `cancel_previous` cancels the active run and then starts. Two runs of one "
    "pipeline never run at once."
)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INITIAL_DELAY_SECONDS = 30.0
DEFAULT_MAX_DELAY_SECONDS = 900.0


class MaintenanceSpec(BaseModel):
    """Table maintenance of the pipeline's tables (docs/maintenance.md): on by default. Expiry and orphan
    cleanup run daily; compaction also after a run that left many small or delete files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Schedule maintenance runs (trigger `maintenance`).")
    compact_small_files: bool = Field(default=True, description="Rewrite small data files into larger ones.")
    compact_delete_files: bool = Field(default=True, description="Fold position-delete files into their data.")
    expire_days: float = Field(default=7, gt=0, le=3650, description="Keep snapshots younger than this (days).")
    keep_snapshots: int = Field(default=10, ge=1, le=10_000, description="Keep at least this many snapshots.")
    orphan_days: float = Field(default=3, gt=0, le=3650,
                               description="Delete unreferenced files only when older than this (days); never "
                                           "less than the pipeline's timeout.")


class RetrySpec(BaseModel):
    """How a failed run is tried again: a new run (trigger `retry`, `attempt` + 1) after an exponential
    backoff with jitter. A run that failed with an error of kind `config` is never retried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20,
                              description="Attempts in all, the first included; 1: never retried.")
    initial_delay_seconds: float = Field(
        default=DEFAULT_INITIAL_DELAY_SECONDS, ge=0, le=86400,
        description="Backoff before the first retry; it doubles for each further one, plus a random "
                    "jitter of up to the same amount.")
    max_delay_seconds: float = Field(default=DEFAULT_MAX_DELAY_SECONDS, ge=0, le=7 * 86400,
                                     description="The backoff never exceeds this.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise field_errors(type(self).__name__, [FieldError(
                ("max_delay_seconds",), "max_delay_seconds must be at least initial_delay_seconds",
                "less_than_initial", self.max_delay_seconds)])
        return self


class ScheduleSpec(BaseModel):
    """When a pipeline runs by itself: a cron expression read in an IANA time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = Field(
        min_length=1, max_length=128,
        description="Cron expression: 5 fields (minute hour day month weekday), or 6 with seconds last, "
                    "or an alias such as `@daily`.",
        examples=["0 2 * * *"],
    )
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64,
        description="IANA time zone the expression is read in, e.g. `Europe/Berlin`; fire times follow "
                    "its daylight saving (see docs/orchestration/schedules.md).",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem is not None:
            raise PydanticCustomError("cron_invalid", problem)
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except ScheduleError as exc:
            raise PydanticCustomError("timezone_unknown", str(exc)) from exc
        return value


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name: letters, digits, `_ . -`.")
    connection_id: uuid.UUID = Field(description="The source connection.")
    streams: list[StreamSpec] = Field(min_length=1, max_length=MAX_STREAMS,
                                      description=f"Streams to load and how (at most {MAX_STREAMS}).")
    destination: DestinationSpec = Field(default_factory=DestinationSpec, description="Where tables go.")
    schedule: ScheduleSpec | None = Field(default=None, description="When it runs by itself; none: manual only.")
    catchup: Catchup = Field(default="last", description=CATCHUP_DOC)
    upstreams: list[UpstreamRef] = Field(default_factory=list, description=UPSTREAMS)
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS, description=TIMEOUT_DOC)
    worker: WorkerOptions | None = Field(default=None, description=WORKER_DOC)
    overlap: Overlap = Field(default="queue", description=OVERLAP_DOC)
    retries: RetrySpec = Field(default_factory=RetrySpec, description=RetrySpec.__doc__)
    drift_policy: DriftPolicy = Field(default_factory=DriftPolicy, description="Responses to schema changes.")
    maintenance: MaintenanceSpec = Field(default_factory=MaintenanceSpec, description=MaintenanceSpec.__doc__)

    @model_validator(mode="after")
    def _streams(self) -> Self:
        check_streams(self, self.streams)
        return self


class PipelineUpdate(BaseModel):
    """A change: fields left out keep their value; only ``schedule`` may be null (manual only)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_null_defaults)

    streams: Omittable[list[StreamSpec]] = Field(
        default=None, min_length=1, max_length=MAX_STREAMS,
        description=f"Streams to load and how (at most {MAX_STREAMS}).",
    )
    destination: Omittable[DestinationSpec] = Field(default=None, description="Where tables go.")
    schedule: ScheduleSpec | None = Field(default=None, description="When it runs by itself; null: manual only.")
    catchup: Omittable[Catchup] = Field(default=None, description=CATCHUP_DOC)
    status: Omittable[Literal["active", "paused"]] = Field(default=None, description="Pause or resume.")
    upstreams: Omittable[list[UpstreamRef]] = Field(
        default=None, description=UPSTREAMS + " The list replaces the current one; `[]` removes them all.")
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TIMEOUT_SECONDS, description=TIMEOUT_DOC + " null removes the limit."
    )
    worker: WorkerOptions | None = Field(
        default=None, description=WORKER_DOC + " Replaced as a whole; null removes it.")
    overlap: Omittable[Overlap] = Field(default=None, description=OVERLAP_DOC)
    retries: Omittable[RetrySpec] = Field(default=None, description=RetrySpec.__doc__)
    drift_policy: Omittable[DriftPolicy] = Field(default=None, description="Responses to schema changes (replaced).")
    maintenance: Omittable[MaintenanceSpec] = Field(default=None, description=MaintenanceSpec.__doc__)

    @model_validator(mode="after")
    def _streams(self) -> Self:
        if self.streams is not None:
            check_streams(self, self.streams)
        return self


class TriggerRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resync: list[str] = Field(
        default_factory=list,
        description="Streams to resync: their state is reset, they are read in full and their tables rewritten.",
    )


class MaintenanceRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["compact", "expire", "clean", "all"] = Field(
        default="all", description="`compact`, `expire`, `clean`, or `all` (in that order).")
    table: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="One of the pipeline's tables (`namespace.table`); left out: every table of the pipeline.")
    dry_run: bool = Field(default=False, description="Only report what would change (in the run's stats).")


class Blocked(BaseModel):
    """An upstream whose latest run ended without succeeding: the pipeline waits until it succeeds."""

    upstream_id: uuid.UUID
    upstream_name: str
    run_id: uuid.UUID | None = Field(description="The upstream's run that blocks.")
    status: str | None = Field(description="How that run ended: `failed`, `partially_succeeded` or `cancelled`.")
    finished_at: datetime | None


class ScheduleOut(BaseModel):
    """A stored schedule as it is (one saved before expressions were checked shows as it was saved)."""

    cron: str
    timezone: str


class PipelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    connection_id: uuid.UUID
    streams: list[StreamSpec]
    destination: DestinationSpec
    schedule: ScheduleOut | None
    catchup: Catchup
    status: str
    timeout_seconds: int | None = Field(description=TIMEOUT_DOC)
    worker: WorkerOptions | None = Field(default=None, description=WORKER_DOC)
    overlap: Overlap = Field(description=OVERLAP_DOC)
    retries: RetrySpec = Field(description=RetrySpec.__doc__)
    drift_policy: dict[str, str] = Field(default_factory=dict, description="Responses to schema changes.")
    maintenance: MaintenanceSpec = Field(default_factory=MaintenanceSpec, description=MaintenanceSpec.__doc__)
    maintained_at: datetime | None = Field(
        default=None,
        description="When a maintenance run of all its tables last succeeded (or, before the first, its first "
                    "successful run: the daily interval starts then); null: no run yet.")
    created_at: datetime

    @field_validator("drift_policy", mode="before")
    @classmethod
    def _no_policy(cls, value: object) -> object:
        # Pipelines stored before policies existed have none; an explicit null in a policy is no response.
        return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else {}
    updated_at: datetime
    upstreams: list[uuid.UUID] = Field(default_factory=list, description="Ids of the pipelines this one waits for.")
    blocked_by: list[Blocked] = Field(
        default_factory=list,
        description="Upstreams whose latest run failed: no dependency run until each succeeds again.")


    @field_validator("retries", mode="before")
    @classmethod
    def _default_retries(cls, value: object) -> object:
        return RetrySpec() if value is None else value  # saved before retries existed

    @field_validator("maintenance", mode="before")
    @classmethod
    def _default_maintenance(cls, value: object) -> object:
        return MaintenanceSpec() if value is None else value  # saved before maintenance existed


class GraphNode(BaseModel):
    id: uuid.UUID
    name: str
    depth: int = Field(description="1 for a direct upstream (or downstream), 2 for theirs, and so on.")
    children: list[GraphNode] = Field(
        description="The next level in the same direction: this node's upstreams in `upstreams`, "
                    "its downstreams in `downstreams`.")


class PipelineGraph(BaseModel):
    """The pipelines around one pipeline, to any depth. A pipeline reached by two paths (a diamond)
    appears under each."""

    id: uuid.UUID
    name: str
    upstreams: list[GraphNode]
    downstreams: list[GraphNode]


class RunOut(BaseModel):
    """A run as the orchestrator recorded it: the answer to a trigger, and its own bookkeeping
    (which pipeline has an active run). Users and other platforms read runs from jobs-svc's
    `/v1/runs`, with the same `run_id`."""

    model_config = ConfigDict(from_attributes=True)

    run_id: uuid.UUID = Field(validation_alias="id", description="The run's id, as in every run view and event.")
    pipeline_id: uuid.UUID
    trigger: str
    status: RunStatus
    attempt: int
    retry_of: uuid.UUID | None = Field(description="The failed run this attempt retries.")
    scheduled_for: datetime | None
    requested_at: datetime
    not_before: datetime | None = Field(description="A retry waits for its backoff until then.")
    admitted_at: datetime | None = Field(
        description="When the run got a slot and was sent to the workers; null while it waits.")
    waiting_reason: str | None = Field(description="Why a queued run still waits, e.g. for a slot.")
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class CancelOut(BaseModel):
    """What a cancel did: `cancelled` (the run was queued, so it ended at once: status `cancelled`) or
    `cancel_requested` (the run is starting or running: its worker is being stopped, and the run ends
    `cancelled` once it stopped; follow it in jobs-svc's `GET /v1/runs/{run_id}`)."""

    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    outcome: Literal["cancelled", "cancel_requested"]
    status: RunStatus = Field(description="The run's status as the orchestrator records it after the cancel.")


class PauseOut(BaseModel):
    """What pausing did."""

    pipeline: PipelineOut
    unscheduled: list[RunOut] = Field(
        description="Upcoming (`scheduled`) runs withdrawn: they will not run (`run.unscheduled`).")
    cancelled: list[RunOut] = Field(
        default_factory=list,
        description="Queued runs that were still waiting for a slot or a retry's backoff: ended `cancelled`.")
    active_run: RunOut | None = Field(
        description="The run that was queued or running, if any: pausing does not stop it.")


class ResumeOut(BaseModel):
    """What resuming did."""

    pipeline: PipelineOut
    queued: list[RunOut] = Field(
        description="Runs requested now for ticks missed while paused (by `catchup`: `last` at most one, "
                    "`none` none; with `all` the others wait their turn in `waiting`).")
    waiting: list[RunOut] = Field(
        description="Missed ticks due but waiting for the active run to end (`catchup: all`, or an active run).")
    upcoming: int = Field(description="Upcoming runs now stored for the schedule's next ticks.")
