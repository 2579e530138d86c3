"""impact-svc: downstream registry, impact analysis and alerts."""

from __future__ import annotations

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import RunFinished, Topic
from tidemark.service import ServiceDefinition
from tidemark_impact import logic
from tidemark_impact.deps import ImpactRuntime
from tidemark_impact.models import TABLES, Base
from tidemark_impact.routes import alerts, downstreams
from tidemark_impact.settings import ImpactSettings


async def _setup(runtime: ImpactRuntime) -> None:
    runtime.consume("runs", [Topic.RUNS], {RunFinished: logic.on_run_finished})


DEFINITION: ServiceDefinition[ImpactSettings, None] = ServiceDefinition(
    name="impact",
    title="Tidemark impact and alerts",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_impact:migrations",
    routers=[downstreams, alerts],
    setup=_setup,
)


def create_app(settings: ImpactSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
