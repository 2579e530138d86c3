"""impact-svc's typed runtime: its settings (it keeps no state beyond the runtime's) and the route dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_impact.settings import ImpactSettings

ImpactRuntime = ServiceRuntime[ImpactSettings, None]
ImpactContext = EventContext[ImpactSettings, None]
Runtime = Annotated[ImpactRuntime, Depends(runtime_dependency("impact"))]
