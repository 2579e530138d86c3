"""impact-svc's typed runtime: its settings, its state (the webhook client and the sender's wake-up)
and the route dependency."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends

from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_impact.settings import ImpactSettings


@dataclass
class ImpactState:
    http: httpx.AsyncClient
    owned_http: httpx.AsyncClient | None
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


ImpactRuntime = ServiceRuntime[ImpactSettings, ImpactState]
ImpactContext = EventContext[ImpactSettings, ImpactState]
Runtime = Annotated[ImpactRuntime, Depends(runtime_dependency("impact"))]
