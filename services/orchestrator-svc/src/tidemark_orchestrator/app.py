"""orchestrator-svc: pipelines, their runs' desired state, and ``run.requested``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx
from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.db import utcnow
from tidemark.events import PipelineDriftActionRequested, PipelinePauseRequested, RunFinished, RunStarted, Topic
from tidemark.service import ServiceDefinition
from tidemark_orchestrator import drift, run_events, scheduler
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.deps import OrchestratorRuntime, OrchestratorState
from tidemark_orchestrator.models import TABLES, Base
from tidemark_orchestrator.routes import router
from tidemark_orchestrator.settings import OrchestratorSettings


def definition(http: httpx.AsyncClient | None = None,
               clock: Callable[[], datetime] = utcnow) -> ServiceDefinition[OrchestratorSettings, OrchestratorState]:
    """The service; ``http`` reaches connector-svc (made and closed here when not given, so tests
    can hand in a client bound to a real connector-svc app); ``clock`` is what the scheduler and the
    routes take as now (tests hand in one they advance)."""

    async def setup(runtime: OrchestratorRuntime) -> OrchestratorState:
        settings = runtime.settings
        client = http if http is not None else httpx.AsyncClient(timeout=settings.discover_timeout_seconds)
        token = settings.platform.internal_token
        catalogs = Catalogs(settings.connector_url, token.get_secret_value() if token else None, client,
                            settings.discover_timeout_seconds)
        runtime.consume("runs", [Topic.RUNS],
                        {RunStarted: run_events.on_run_started, RunFinished: run_events.on_run_finished},
                        together=run_events.on_run_events)
        runtime.consume("drift", [Topic.PIPELINES], {PipelinePauseRequested: drift.on_pause_requested,
                                                     PipelineDriftActionRequested: drift.on_action_requested})
        state = OrchestratorState(catalogs=catalogs, owned_http=None if http is not None else client, clock=clock)
        if settings.scheduler_enabled:
            runtime.spawn(scheduler.run_scheduler(runtime, clock, state.scheduler_wakeup), "scheduler")
        return state

    async def teardown(runtime: OrchestratorRuntime) -> None:
        if runtime.state.owned_http is not None:
            await runtime.state.owned_http.aclose()

    return ServiceDefinition(
        name="orchestrator",
        title="Tidemark orchestrator",
        metadata=Base.metadata,
        tables=TABLES,
        migrations="tidemark_orchestrator:migrations",
        routers=[router],
        setup=setup,
        teardown=teardown,
    )


DEFINITION = definition()


def create_app(settings: OrchestratorSettings, http: httpx.AsyncClient | None = None,
               clock: Callable[[], datetime] = utcnow) -> FastAPI:
    return build_app([(definition(http, clock), settings)], title="Tidemark orchestrator")
