"""schema-svc: schema snapshots and drift detection for every connection."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.connectors.client import DEFAULT_TIMEOUT
from tidemark.events import ConnectionChanged, DriftActionRecorded, RunRequested, Topic
from tidemark.service import ServiceDefinition
from tidemark_schema import logic, poller
from tidemark_schema.deps import SchemaRuntime, SchemaState
from tidemark_schema.models import TABLES, Base
from tidemark_schema.routes import drift, router
from tidemark_schema.settings import SchemaSettings


def definition(http: httpx.AsyncClient | None = None) -> ServiceDefinition[SchemaSettings, SchemaState]:
    """The service; ``http`` reaches connector-svc (made and closed here when not given, so tests and
    the embedded platform can hand in a client bound to a connector-svc app)."""

    async def setup(runtime: SchemaRuntime) -> SchemaState:
        client = http if http is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        state = SchemaState(http=client, owned_http=None if http is not None else client)
        runtime.consume("connections", [Topic.CONNECTIONS], {ConnectionChanged: logic.on_connection_changed})
        runtime.consume("drift-actions", [Topic.SCHEMA], {DriftActionRecorded: logic.on_drift_action})
        runtime.consume("runs", [Topic.RUNS], {RunRequested: logic.on_run_requested})
        if runtime.settings.poll_enabled:
            runtime.spawn(poller.run_poller(runtime, state.wakeup), "poller")
        return state

    async def teardown(runtime: SchemaRuntime) -> None:
        for _, source in runtime.state.sources.values():
            source.close()
        if runtime.state.owned_http is not None:
            await runtime.state.owned_http.aclose()

    return ServiceDefinition(
        name="schema",
        title="Tidemark schema",
        metadata=Base.metadata,
        tables=TABLES,
        migrations="tidemark_schema:migrations",
        routers=[router, drift],
        setup=setup,
        teardown=teardown,
    )


DEFINITION = definition()


def create_app(settings: SchemaSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
