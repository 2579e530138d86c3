"""ingest-svc's API models."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tidemark.events import RunStatus, StreamStats


class WorkerRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: uuid.UUID
    pipeline_id: uuid.UUID
    status: RunStatus
    launcher: str = Field(description="`local` or `kubernetes`.")
    worker_ref: str | None = Field(description="Process id or Kubernetes Job name.")
    attempt: int
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = Field(description="When the worker last said it was alive.")
    error: str | None
    stats: list[StreamStats] = Field(description="Per-stream results, once the run finished.")
