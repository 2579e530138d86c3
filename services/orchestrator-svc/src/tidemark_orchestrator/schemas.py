"""The orchestrator's API models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tidemark.events import DestinationSpec, RunStatus, StreamSpec, SyncMode

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


def check_streams(streams: list[StreamSpec]) -> None:
    seen: set[str] = set()
    for s in streams:
        if s.name in seen:
            raise ValueError(f"stream {s.name!r} is listed twice")
        seen.add(s.name)
        if s.sync_mode is SyncMode.INCREMENTAL and not (s.primary_key and s.cursor_field):
            raise ValueError(
                f"stream {s.name!r}: incremental needs a primary_key and a cursor_field to merge on"
            )
        if s.sync_mode is SyncMode.INCREMENTAL_APPEND and not s.cursor_field:
            raise ValueError(f"stream {s.name!r}: incremental_append needs a cursor_field")


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name: letters, digits, `_ . -`.")
    connection_id: uuid.UUID = Field(description="The source connection.")
    streams: list[StreamSpec] = Field(min_length=1, description="Streams to load and how.")
    destination: DestinationSpec = Field(default_factory=DestinationSpec, description="Where tables go.")
    # max_length matches the `pipelines.schedule` column: longer text is a 422, not a database error.
    schedule: str | None = Field(
        default=None, max_length=128, description="Cron expression (UTC); none means manual only."
    )

    @model_validator(mode="after")
    def _streams(self) -> Self:
        check_streams(self.streams)
        return self


class PipelineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streams: list[StreamSpec] | None = Field(default=None, min_length=1)
    destination: DestinationSpec | None = None
    schedule: str | None = Field(default=None, max_length=128)
    status: Literal["active", "paused"] | None = None

    @model_validator(mode="after")
    def _streams(self) -> Self:
        if self.streams is not None:
            check_streams(self.streams)
        return self


class TriggerRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resync: list[str] = Field(
        default_factory=list,
        description="Streams to resync: their state is reset, they are read in full and their tables rewritten.",
    )


class PipelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    connection_id: uuid.UUID
    streams: list[StreamSpec]
    destination: DestinationSpec
    schedule: str | None
    status: str
    created_at: datetime
    updated_at: datetime


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    pipeline_id: uuid.UUID
    trigger: str
    status: RunStatus
    attempt: int
    scheduled_for: datetime | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
