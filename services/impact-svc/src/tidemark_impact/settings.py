from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class ImpactSettings(ServiceSettings):
    """Settings of impact-svc (impact analysis and alerts); env prefix ``TIDEMARK_IMPACT__``."""

    service_name: ClassVar[str] = "impact"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_IMPACT__", env_nested_delimiter="__", extra="ignore")
