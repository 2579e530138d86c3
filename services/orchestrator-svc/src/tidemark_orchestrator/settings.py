from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tidemark.connectors.client import DISCOVER_TIMEOUT
from tidemark.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Settings of orchestrator-svc; env prefix ``TIDEMARK_ORCHESTRATOR__``."""

    service_name: ClassVar[str] = "orchestrator"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_ORCHESTRATOR__", env_nested_delimiter="__", extra="ignore")

    connector_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of connector-svc; pipelines are validated against the catalog its internal "
                    "route discovers (with the platform's internal token).",
    )
    discover_timeout_seconds: float = Field(
        default=DISCOVER_TIMEOUT, gt=0, le=3600,
        description="How long to wait for connector-svc to discover a connection's catalog when a pipeline "
                    "is created or changed; longer than connector-svc's own limit, so its answer arrives.",
    )
