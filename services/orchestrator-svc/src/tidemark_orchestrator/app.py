"""orchestrator-svc: pipelines, their runs' desired state, and ``run.requested``."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import RunFinished, RunStarted, Topic
from tidemark.service import ServiceDefinition, ServiceRuntime, handle_types
from tidemark_orchestrator import logic
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.models import TABLES, Base
from tidemark_orchestrator.routes import CATALOGS_EXTRA, CLAIMS_EXTRA, router
from tidemark_orchestrator.settings import OrchestratorSettings

OWNED_HTTP = "connector_http"


def definition(http: httpx.AsyncClient | None = None) -> ServiceDefinition:
    """The service; ``http`` reaches connector-svc (made and closed here when not given, so tests
    can hand in a client bound to a real connector-svc app)."""

    async def setup(runtime: ServiceRuntime) -> None:
        settings: OrchestratorSettings = runtime.settings
        client = http
        if client is None:
            client = runtime.extras[OWNED_HTTP] = httpx.AsyncClient(timeout=settings.discover_timeout_seconds)
        runtime.extras[CLAIMS_EXTRA] = asyncio.Lock()
        token = settings.platform.internal_token
        runtime.extras[CATALOGS_EXTRA] = Catalogs(
            settings.connector_url, token.get_secret_value() if token else None, client,
            settings.discover_timeout_seconds,
        )
        runtime.consume(
            "runs",
            [Topic.RUNS],
            handle_types({RunStarted: logic.on_run_started, RunFinished: logic.on_run_finished}),
        )

    async def teardown(runtime: ServiceRuntime) -> None:
        client: httpx.AsyncClient | None = runtime.extras.pop(OWNED_HTTP, None)
        if client is not None:
            await client.aclose()

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


def create_app(settings: OrchestratorSettings, http: httpx.AsyncClient | None = None) -> FastAPI:
    return build_app([(definition(http), settings)], title="Tidemark orchestrator")
