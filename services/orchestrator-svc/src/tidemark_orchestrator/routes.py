"""/v1/pipelines: create, list, change, delete pipelines; trigger and list their runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from tidemark.api.openapi import problem_responses
from tidemark.service import ServiceRuntime, runtime_of
from tidemark_orchestrator import logic, repository
from tidemark_orchestrator.schemas import PipelineCreate, PipelineOut, PipelineUpdate, RunOut, TriggerRun


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "orchestrator")


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_pipeline(body: PipelineCreate, rt: Runtime) -> PipelineOut:
    async with rt.transaction() as session:
        pipeline = await repository.add_pipeline(session, body)
        return PipelineOut.model_validate(pipeline)


@router.get("")
async def list_pipelines(rt: Runtime) -> list[PipelineOut]:
    async with rt.sessions() as session:
        return [PipelineOut.model_validate(p) for p in await repository.list_pipelines(session)]


@router.get("/{pipeline_id}")
async def get_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> PipelineOut:
    async with rt.sessions() as session:
        return PipelineOut.model_validate(await repository.get_pipeline(session, pipeline_id))


@router.patch("/{pipeline_id}")
async def update_pipeline(pipeline_id: uuid.UUID, body: PipelineUpdate, rt: Runtime) -> PipelineOut:
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id)
        return PipelineOut.model_validate(await repository.update_pipeline(session, pipeline, body))


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_pipeline(pipeline_id: uuid.UUID, rt: Runtime) -> Response:
    async with rt.transaction() as session:
        await repository.delete_pipeline(session, await repository.get_pipeline(session, pipeline_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{pipeline_id}/runs", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(409))
async def trigger_run(pipeline_id: uuid.UUID, rt: Runtime, body: TriggerRun | None = None) -> RunOut:
    """Queue a manual run, optionally resyncing some streams.

    409 when the pipeline is paused or already has an active run."""
    resync = body.resync if body is not None else []
    async with rt.transaction() as session:
        pipeline = await repository.get_pipeline(session, pipeline_id)
        run = await logic.request_run(rt, session, pipeline, "manual", resync)
        return RunOut.model_validate(run)


@router.get("/{pipeline_id}/runs")
async def list_pipeline_runs(
    pipeline_id: uuid.UUID, rt: Runtime, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RunOut]:
    async with rt.sessions() as session:
        await repository.get_pipeline(session, pipeline_id)
        return [RunOut.model_validate(r) for r in await repository.list_runs(session, pipeline_id, limit)]
