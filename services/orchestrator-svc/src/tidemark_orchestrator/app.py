"""orchestrator-svc: pipelines, their runs' desired state, and ``run.requested``."""

from __future__ import annotations

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import RunFinished, RunStarted, Topic
from tidemark.service import ServiceDefinition, ServiceRuntime, handle_types
from tidemark_orchestrator import logic
from tidemark_orchestrator.models import TABLES, Base
from tidemark_orchestrator.routes import router
from tidemark_orchestrator.settings import OrchestratorSettings


async def _setup(runtime: ServiceRuntime) -> None:
    runtime.consume(
        "runs",
        [Topic.RUNS],
        handle_types({RunStarted: logic.on_run_started, RunFinished: logic.on_run_finished}),
    )


DEFINITION = ServiceDefinition(
    name="orchestrator",
    title="Tidemark orchestrator",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_orchestrator:migrations",
    routers=[router],
    setup=_setup,
)


def create_app(settings: OrchestratorSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
