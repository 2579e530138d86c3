"""Cancelling a run: at once while it waits, through its workers once it was sent to them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConflictError, NotFoundError
from tidemark.events import RunCancelRequested, RunError, RunFinished, RunStatus, may_move
from tidemark_orchestrator import admission, repository
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.schemas import CancelOut

__all__ = ["CANCELLED_BY_USER", "cancel_run"]

CANCELLED_BY_USER = "cancelled by user"


async def cancel_run(runtime: OrchestratorRuntime, session: AsyncSession, pipeline_id: uuid.UUID,
                     run_id: uuid.UUID, reason: str = CANCELLED_BY_USER, admit: bool = True) -> CancelOut:
    """Cancel a run of ``pipeline_id`` in the caller's transaction.

    A queued run ends ``cancelled`` at once with a ``run.finished`` (ingest-svc, seeing it, never
    launches the run, or stops a worker it launched meanwhile). A starting or running run gets a
    ``run.cancel_requested``: ingest-svc stops its worker and ends the run. 404 for an unknown run or
    one of another pipeline; 409 for a run that already ended."""
    await repository.get_pipeline(session, pipeline_id)
    run = await repository.get_run(session, run_id)
    if run is None or run.pipeline_id != pipeline_id:
        raise NotFoundError(f"run {run_id} of pipeline {pipeline_id} does not exist")
    if RunStatus(run.status).terminal:
        raise ConflictError(f"run {run_id} already ended: {run.status}", run_id=str(run_id), run_status=run.status)
    if run.status == RunStatus.QUEUED and may_move(run.status, RunStatus.CANCELLED):
        run.status = RunStatus.CANCELLED
        run.finished_at = runtime.state.clock()
        run.error = reason
        await runtime.emit(session, RunFinished(run_id=run.id, pipeline_id=pipeline_id, status=RunStatus.CANCELLED,
                                                error=RunError(message=reason, kind="terminal")))
        if admit:  # a slot it held, or its place in line, is free
            await admission.admit(runtime, session, runtime.state.clock())
        return CancelOut(run_id=run.id, pipeline_id=pipeline_id, outcome="cancelled", status=RunStatus.CANCELLED)
    await runtime.emit(session, RunCancelRequested(run_id=run.id, pipeline_id=pipeline_id, reason=reason))
    return CancelOut(run_id=run.id, pipeline_id=pipeline_id, outcome="cancel_requested",
                     status=RunStatus(run.status))


