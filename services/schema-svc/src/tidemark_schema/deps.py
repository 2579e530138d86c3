"""schema-svc's typed runtime: its settings (it keeps no state beyond the runtime's) and the route dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tidemark.service import EventContext, ServiceRuntime, runtime_dependency
from tidemark_schema.settings import SchemaSettings

SchemaRuntime = ServiceRuntime[SchemaSettings, None]
SchemaContext = EventContext[SchemaSettings, None]
Runtime = Annotated[SchemaRuntime, Depends(runtime_dependency("schema"))]
