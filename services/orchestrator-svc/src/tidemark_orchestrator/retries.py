"""Retries owned by the orchestrator: a failed run is tried again as a new run of its own.

Each attempt is a run (trigger ``retry``, ``attempt`` + 1, ``retry_of`` the run it retries) queued
with ``not_before`` after an exponential backoff with jitter, so it shows in every run view while
it waits. Only ``failed`` runs are retried, and never one whose error is of kind ``config`` (a wrong
password or a missing table fails the same way until a user changes something). A timeout ends a
run ``failed`` with a transient error, so it is retried too; a cancelled run is not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import tenacity
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.events import RunFinished, RunStatus
from tidemark.events.contracts import MaintenanceRequest
from tidemark_orchestrator import admission
from tidemark_orchestrator.deps import OrchestratorRuntime
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_orchestrator.schemas import RetrySpec


def policy(pipeline: Pipeline) -> RetrySpec:
    return RetrySpec.model_validate(pipeline.retries) if pipeline.retries else RetrySpec()


def backoff(spec: RetrySpec, failed_attempt: int) -> timedelta:
    """The wait after attempt ``failed_attempt`` (1 for the first run): ``initial * 2^(n-1)`` plus a
    jitter of up to ``initial``, at most ``max_delay_seconds``. tenacity's wait strategy does the
    arithmetic, so this backoff is the one every tenacity user knows."""
    wait = tenacity.wait_exponential_jitter(multiplier=spec.initial_delay_seconds, max=spec.max_delay_seconds,
                                            jitter=spec.initial_delay_seconds)
    state = tenacity.RetryCallState(retry_object=tenacity.AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = failed_attempt
    return timedelta(seconds=wait(state))


def retryable(run: Run, event: RunFinished) -> bool:
    return event.status is RunStatus.FAILED and not (event.error is not None and event.error.kind == "config")


async def retry_if_due(runtime: OrchestratorRuntime, session: AsyncSession, pipeline: Pipeline, run: Run,
                       event: RunFinished, now: datetime) -> Run | None:
    """Queue the next attempt of ``run``, which just ended as ``event`` says, when its pipeline's
    policy allows one; returns it. A paused pipeline is not retried (resume and trigger it)."""
    spec = policy(pipeline)
    if not retryable(run, event) or run.attempt >= spec.max_attempts or pipeline.status != "active":
        return None
    return await admission.enqueue(runtime, session, pipeline, "retry", now, attempt=run.attempt + 1,
                                   retry_of=run.id, not_before=now + backoff(spec, run.attempt),
                                   resync=run.resync or (),
                                   maintenance=MaintenanceRequest.model_validate(run.maintenance)
                                   if run.maintenance else None)
