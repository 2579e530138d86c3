"""connector-svc: connections (secrets encrypted), their checks and catalogs, and ``connection.changed``."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tidemark.api.app import build_app
from tidemark.connectors.registry import distinct_types
from tidemark.service import ServiceDefinition
from tidemark_connector.crypto import SecretBox, load_secret_key
from tidemark_connector.deps import ConnectorRuntime, ConnectorState
from tidemark_connector.metrics import series_at_zero
from tidemark_connector.models import TABLES, Base
from tidemark_connector.rotation import rotate_at_start_up
from tidemark_connector.routes import internal_router, router, types_router
from tidemark_connector.settings import ConnectorSettings
from tidemark_connector.tokens import router as tokens_router


async def _setup(runtime: ConnectorRuntime) -> ConnectorState:
    key = await asyncio.to_thread(load_secret_key, runtime.settings)
    series_at_zero(distinct_types())
    box = SecretBox(key, runtime.settings.previous_secret_keys)
    if box.rotating:
        # Older keys configured: re-encrypt what they still hold, so they can be dropped (docs/deploy.md).
        runtime.spawn(rotate_at_start_up(runtime.sessions, box), "key-rotation")
    return ConnectorState(box=box)


DEFINITION: ServiceDefinition[ConnectorSettings, ConnectorState] = ServiceDefinition(
    name="connector",
    title="Tidemark connector",
    metadata=Base.metadata,
    tables=TABLES,
    migrations="tidemark_connector:migrations",
    routers=[types_router, router],
    admin_routers=[tokens_router],
    internal_routers=[internal_router],
    setup=_setup,
)


def create_app(settings: ConnectorSettings) -> FastAPI:
    return build_app([(DEFINITION, settings)], title=DEFINITION.title)
