"""schema-svc's typed runtime: its settings, its state (the HTTP client to connector-svc and the
sources it keeps open between polls) and the route dependency."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import Depends

from tidemark.connectors import Source
from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_schema.settings import SchemaSettings


@dataclass
class SchemaState:
    http: httpx.AsyncClient
    owned_http: httpx.AsyncClient | None
    # Each connection's source, built from its config once and kept until the connection changes.
    sources: dict[uuid.UUID, tuple[datetime, Source]] = field(default_factory=dict)
    # One poll at a time per connection: the poller and a refresh never diff the same change twice.
    locks: dict[uuid.UUID, asyncio.Lock] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def lock(self, connection_id: uuid.UUID) -> asyncio.Lock:
        return self.locks.setdefault(connection_id, asyncio.Lock())


SchemaRuntime = ServiceRuntime[SchemaSettings, SchemaState]
SchemaContext = EventContext[SchemaSettings, SchemaState]
Runtime = Annotated[SchemaRuntime, Depends(runtime_dependency("schema"))]
