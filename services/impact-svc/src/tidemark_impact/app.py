"""impact-svc: pipelines projection, downstream registry, impact analysis, drift policies and alerts."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import PipelineChanged, RunFinished, SchemaDriftDetected, Topic
from tidemark.service import ServiceDefinition
from tidemark_impact import delivery, logic
from tidemark_impact.deps import ImpactRuntime, ImpactState
from tidemark_impact.models import TABLES, Base
from tidemark_impact.routes import alerts, downstreams, impact, lineage_router, rules
from tidemark_impact.settings import ImpactSettings


def definition(http: httpx.AsyncClient | None = None) -> ServiceDefinition[ImpactSettings, ImpactState]:
    """The service; ``http`` posts alerts to webhooks (made and closed here when not given)."""

    async def setup(runtime: ImpactRuntime) -> ImpactState:
        client = http if http is not None else httpx.AsyncClient(
            timeout=runtime.settings.delivery_timeout_seconds, follow_redirects=False)
        state = ImpactState(http=client, owned_http=None if http is not None else client)
        runtime.consume("runs", [Topic.RUNS], {RunFinished: logic.on_run_finished})
        runtime.consume("pipelines", [Topic.PIPELINES], {PipelineChanged: logic.on_pipeline_changed})
        runtime.consume("schema", [Topic.SCHEMA], {SchemaDriftDetected: logic.on_schema_drift})
        runtime.spawn(delivery.run_sender(runtime), "alert-sender")
        return state

    async def teardown(runtime: ImpactRuntime) -> None:
        if runtime.state.owned_http is not None:
            await runtime.state.owned_http.aclose()

    return ServiceDefinition(
        name="impact",
        title="Tidemark impact and alerts",
        metadata=Base.metadata,
        tables=TABLES,
        migrations="tidemark_impact:migrations",
        routers=[downstreams, lineage_router, impact, alerts],
        admin_routers=[rules],
        setup=setup,
        teardown=teardown,
    )


DEFINITION = definition()


def create_app(settings: ImpactSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
