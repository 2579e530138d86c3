"""ingest-svc's typed runtime: its settings, the state its setup makes, and the route dependency."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_ingest.launchers import Launcher
from tidemark_ingest.settings import IngestSettings


@dataclass(frozen=True)
class IngestState:
    launcher: Launcher
    wakeup: asyncio.Event = field(
        default_factory=asyncio.Event,
        metadata={"doc": "Set once a queued run is committed, so the launch loop starts it at once."})
    stops: set[asyncio.Task[None]] = field(
        default_factory=set, metadata={"doc": "Workers being stopped for a cancel (kept so none is lost)."})


IngestRuntime = ServiceRuntime[IngestSettings, IngestState]
IngestContext = EventContext[IngestSettings, IngestState]
Runtime = Annotated[IngestRuntime, Depends(runtime_dependency("ingest"))]
