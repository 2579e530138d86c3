"""schema-svc: schema snapshots and drift detection for every connection."""

from __future__ import annotations

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.events import ConnectionChanged, Topic
from tidemark.service import ServiceDefinition
from tidemark_schema import logic
from tidemark_schema.deps import SchemaRuntime
from tidemark_schema.models import TABLES, Base
from tidemark_schema.routes import router
from tidemark_schema.settings import SchemaSettings


async def _setup(runtime: SchemaRuntime) -> None:
    runtime.consume("connections", [Topic.CONNECTIONS], {ConnectionChanged: logic.on_connection_changed})


DEFINITION: ServiceDefinition[SchemaSettings, None] = ServiceDefinition(
    name="schema",
    title="Tidemark schema",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_schema:migrations",
    routers=[router],
    setup=_setup,
)


def create_app(settings: SchemaSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
