from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from tidemark.events import RunStatus, StreamStats


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    pipeline_name: str | None
    trigger: str | None
    status: RunStatus
    attempt: int
    scheduled_for: datetime | None
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    rows_read: int
    rows_written: int
    bytes_written: int
    worker_ref: str | None
    error: str | None
    streams: list[StreamStats]
