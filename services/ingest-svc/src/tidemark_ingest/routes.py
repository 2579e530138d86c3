"""/v1/workers: the runs this service launched, their workers and heartbeats."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tidemark.events import RunStatus
from tidemark_ingest import repository
from tidemark_ingest.deps import Runtime
from tidemark_ingest.schemas import WorkerRunOut

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("")
async def list_workers(
    rt: Runtime,
    status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[WorkerRunOut]:
    """Worker runs, newest first."""
    async with rt.sessions() as session:
        return [WorkerRunOut.model_validate(r) for r in await repository.list_worker_runs(session, status, limit)]


@router.get("/{run_id}")
async def get_worker(run_id: uuid.UUID, rt: Runtime) -> WorkerRunOut:
    async with rt.sessions() as session:
        return WorkerRunOut.model_validate(await repository.require_worker_run(session, run_id))
