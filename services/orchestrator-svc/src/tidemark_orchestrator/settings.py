from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Settings of orchestrator-svc; env prefix ``TIDEMARK_ORCHESTRATOR__``."""

    service_name: ClassVar[str] = "orchestrator"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_ORCHESTRATOR__", env_nested_delimiter="__", extra="ignore")
