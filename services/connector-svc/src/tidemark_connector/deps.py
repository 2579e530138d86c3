"""connector-svc's typed runtime: its settings, the state its setup makes, and the route dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from tidemark.service import ServiceRuntime, runtime_dependency
from tidemark_connector.crypto import SecretBox
from tidemark_connector.settings import ConnectorSettings


@dataclass(frozen=True)
class ConnectorState:
    box: SecretBox


ConnectorRuntime = ServiceRuntime[ConnectorSettings, ConnectorState]
Runtime = Annotated[ConnectorRuntime, Depends(runtime_dependency("connector"))]
