from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DownstreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique name, e.g. `Revenue dashboard`.")
    kind: Literal["dashboard", "model", "table"] = Field(description="What reads the table.")
    table: str = Field(
        pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$",
        max_length=255,  # the `downstreams.table` column
        description="The Tidemark table it reads, `namespace.table`.",
    )
    columns: list[str] | None = Field(default=None, description="Columns it reads, when known (lineage).")
    url: str | None = Field(default=None, max_length=2048)
    owner: str | None = Field(default=None, max_length=200)


class DownstreamOut(DownstreamCreate):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
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
