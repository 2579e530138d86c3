"""/v1/runs: the read API for runs (users and other platforms), filterable by status and pipeline."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from tidemark.errors import NotFoundError
from tidemark.events import RunStatus
from tidemark_jobs.deps import Runtime
from tidemark_jobs.models import RunView
from tidemark_jobs.schemas import RunOut

READ_API = (
    "The read API for runs: every run of every pipeline, folded from the `run.*` events, with its "
    "streams, rows and warnings. Trigger runs with the orchestrator's `POST /v1/pipelines/{id}/runs`; "
    "its answer's `run_id` is the `run_id` here."
)
router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.get("", summary="Runs, newest first; upcoming (scheduled) ones after them, soonest first",
            description=READ_API)
async def list_runs(
    rt: Runtime,
    status: Annotated[list[RunStatus] | None, Query(description="Only runs in these states.")] = None,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Only this pipeline's runs.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunOut]:
    # Upcoming runs have no request time yet: they come last, the soonest tick first.
    query = sa.select(RunView).order_by(RunView.requested_at.desc().nulls_last(), RunView.scheduled_for.asc(),
                                        RunView.run_id.desc())
    if status:
        query = query.where(RunView.status.in_([s.value for s in status]))
    if pipeline_id is not None:
        query = query.where(RunView.pipeline_id == pipeline_id)
    async with rt.sessions() as session:
        rows = (await session.scalars(query.limit(limit))).all()
    return [RunOut.model_validate(r) for r in rows]


@router.get("/{run_id}", summary="One run", description=READ_API)
async def get_run(run_id: uuid.UUID, rt: Runtime) -> RunOut:
    async with rt.sessions() as session:
        view = await session.get(RunView, run_id)
    if view is None:
        raise NotFoundError(f"run {run_id} is unknown to jobs-svc")
    return RunOut.model_validate(view)
