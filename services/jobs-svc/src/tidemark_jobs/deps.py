"""jobs-svc's typed runtime: its settings (it keeps no state beyond the runtime's) and the route dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_jobs.settings import JobsSettings

JobsRuntime = ServiceRuntime[JobsSettings, None]
JobsContext = EventContext[JobsSettings, None]
Runtime = Annotated[JobsRuntime, Depends(runtime_dependency("jobs"))]
