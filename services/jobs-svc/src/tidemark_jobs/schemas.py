from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tidemark.events import RunStatus, StreamStats


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    pipeline_name: str | None
    connection_id: uuid.UUID | None
    trigger: str | None
    status: RunStatus
    attempt: int
    retry_of: uuid.UUID | None = Field(description="The failed run this attempt retries.")
    scheduled_for: datetime | None
    queued_at: datetime | None = Field(description="When the run was queued (jobs-svc first heard of it).")
    not_before: datetime | None = Field(description="A queued retry waits for its backoff until then.")
    wait_reason: str | None = Field(description="Why a queued run still waits.")
    requested_at: datetime | None = Field(description="When the run was admitted to start.")
    started_at: datetime | None
    finished_at: datetime | None
    rows_read: int
    rows_written: int
    bytes_written: int
    worker_ref: str | None
    error: str | None
    error_kind: str | None = Field(description="`config`, `transient` or `terminal`: whether a retry can help.")
    streams: list[StreamStats]


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    totals: dict[str, int] = Field(
        description="Runs per status matching the other filters (the status filter left out), every status a key.",
    )


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: RunStatus = Field(description="The run's status after this step.")
    at: datetime
    event: str = Field(description="The event that made it, e.g. `run.started`.")
    reason: str | None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: uuid.UUID
    attempt: int
    status: RunStatus
    queued_at: datetime | None
    finished_at: datetime | None
    error: str | None


class ErrorOut(BaseModel):
    message: str
    kind: str | None
    stream: str | None
    hint: str | None = Field(description="What to do about it, in a sentence.")


class RunDetail(RunOut):
    timeline: list[TransitionOut] = Field(description="Every transition, oldest first, with its time and reason.")
    attempts: list[AttemptOut] = Field(description="Every attempt of this run's retry chain, the first first.")
    retried_by: list[uuid.UUID] = Field(description="Runs that retry this one.")
    error_detail: ErrorOut | None
    duration_seconds: float | None
    log_records: int = Field(description="Log records kept for this run (`GET /v1/runs/{id}/logs`).")
    logs_dropped: int = Field(description="Older log records dropped to keep the log bounded.")


class LogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    level: str
    logger: str
    message: str
    fields: dict[str, Any]


class LogPage(BaseModel):
    items: list[LogOut]
    next_after: int | None = Field(description="Pass as `after` to get only newer records (null: none yet).")
    live: bool = Field(description="The run has not ended: more records may come.")
    dropped: int
