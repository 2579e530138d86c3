"""jobs-svc: the runs read model and the Jobs view."""

from __future__ import annotations

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import RunFinished, RunProgress, RunRequested, RunScheduled, RunStarted, RunUnscheduled, Topic
from tidemark.service import ServiceDefinition
from tidemark_jobs import projection
from tidemark_jobs.deps import JobsRuntime
from tidemark_jobs.models import TABLES, Base
from tidemark_jobs.routes import router
from tidemark_jobs.settings import JobsSettings


async def _setup(runtime: JobsRuntime) -> None:
    runtime.consume("runs", [Topic.RUNS], {
        RunScheduled: projection.on_scheduled,
        RunUnscheduled: projection.on_unscheduled,
        RunRequested: projection.on_requested,
        RunStarted: projection.on_started,
        RunProgress: projection.on_progress,
        RunFinished: projection.on_finished,
    })


DEFINITION: ServiceDefinition[JobsSettings, None] = ServiceDefinition(
    name="jobs",
    title="Tidemark jobs",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_jobs:migrations",
    routers=[router],
    setup=_setup,
)


def create_app(settings: JobsSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
