"""orchestrator-svc's typed runtime: its settings, the state its setup makes, and the route dependency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import Depends

from tidemark.db import utcnow
from tidemark.service import BatchContext, EventContext, ServiceRuntime, runtime_dependency
from tidemark_orchestrator.catalogs import Catalogs
from tidemark_orchestrator.settings import OrchestratorSettings


@dataclass(frozen=True)
class OrchestratorState:
    catalogs: Catalogs
    owned_http: httpx.AsyncClient | None = field(
        default=None, metadata={"doc": "The client setup made (and teardown closes) when none was given."})
    claims: asyncio.Lock = field(
        default_factory=asyncio.Lock,
        metadata={"doc": "Held from the collision check to the commit, so two requests of this process "
                         "cannot both find a table free (across replicas, a PostgreSQL advisory lock too)."})
    clock: Callable[[], datetime] = field(
        default=utcnow, metadata={"doc": "Now, as an aware UTC datetime; tests hand in one they advance."})
    scheduler_wakeup: asyncio.Event = field(
        default_factory=asyncio.Event,
        metadata={"doc": "Set when a run ends, so a tick waiting for it fires without waiting a whole poll."})


OrchestratorRuntime = ServiceRuntime[OrchestratorSettings, OrchestratorState]
OrchestratorContext = EventContext[OrchestratorSettings, OrchestratorState]
OrchestratorBatchContext = BatchContext[OrchestratorSettings, OrchestratorState]
Runtime = Annotated[OrchestratorRuntime, Depends(runtime_dependency("orchestrator"))]
