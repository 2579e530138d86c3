"""jobs-svc: the runs read model and the Jobs view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import (
    PipelineChanged,
    RunCancelRequested,
    RunFinished,
    RunLogged,
    RunProgress,
    RunQueued,
    RunRequested,
    RunScheduled,
    RunStarted,
    RunUnscheduled,
    RunWaiting,
    Topic,
)
from tidemark.service import EventHandler, ServiceDefinition
from tidemark_jobs import metrics, pages, projection
from tidemark_jobs.deps import JobsRuntime
from tidemark_jobs.models import TABLES, Base
from tidemark_jobs.routes import router
from tidemark_jobs.settings import JobsSettings

# The whole read model is these handlers over the runs topic; the rebuild command replays it with them.
HANDLERS: Mapping[type[Any], EventHandler[JobsSettings, None, Any]] = {
    RunScheduled: projection.on_scheduled,
    RunUnscheduled: projection.on_unscheduled,
    RunQueued: projection.on_queued,
    RunWaiting: projection.on_waiting,
    RunRequested: projection.on_requested,
    RunStarted: projection.on_started,
    RunProgress: projection.on_progress,
    RunCancelRequested: projection.on_cancel_requested,
    RunFinished: projection.on_finished,
    RunLogged: projection.on_logged,
}


async def _setup(runtime: JobsRuntime) -> None:
    runtime.consume("runs", [Topic.RUNS], HANDLERS)
    runtime.consume("pipelines", [Topic.PIPELINES], {PipelineChanged: projection.on_pipeline_changed})
    runtime.spawn(metrics.refresh_forever(runtime.sessions, runtime.settings.metrics_refresh_seconds), "run-metrics")


DEFINITION: ServiceDefinition[JobsSettings, None] = ServiceDefinition(
    name="jobs",
    title="Tidemark jobs",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_jobs:migrations",
    routers=[router],
    pages=[pages.router],
    setup=_setup,
)


def create_app(settings: JobsSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
