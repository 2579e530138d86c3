"""/v1/workers: the runs this service launched, their workers and heartbeats (operational)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tidemark.events import RunStatus
from tidemark_ingest import repository
from tidemark_ingest.deps import Runtime
from tidemark_ingest.schemas import WorkerRunOut

OPERATIONAL = (
    "**Operational view** for whoever runs the platform: the workers ingest-svc launched for runs, "
    "with their launcher, process or Job name and last heartbeat. It is not the read API for runs: "
    "users and other platforms read runs from jobs-svc's `GET /v1/runs` (the same `run_id`)."
)
router = APIRouter(prefix="/v1/workers", tags=["workers (operational)"])


@router.get("", summary="Worker runs, newest first (operational)", description=OPERATIONAL)
async def list_workers(
    rt: Runtime,
    status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[WorkerRunOut]:
    async with rt.sessions() as session:
        return [WorkerRunOut.model_validate(r) for r in await repository.list_worker_runs(session, status, limit)]


@router.get("/{run_id}", summary="One worker run (operational)", description=OPERATIONAL)
async def get_worker(run_id: uuid.UUID, rt: Runtime) -> WorkerRunOut:
    async with rt.sessions() as session:
        return WorkerRunOut.model_validate(await repository.require_worker_run(session, run_id))
