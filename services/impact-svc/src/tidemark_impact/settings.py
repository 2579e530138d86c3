from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class ImpactSettings(ServiceSettings):
    """Settings of impact-svc (impact analysis and alerts); env prefix ``TIDEMARK_IMPACT__``."""

    service_name: ClassVar[str] = "impact"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_IMPACT__", env_nested_delimiter="__", extra="ignore")

    delivery_attempts: int = Field(default=5, ge=1, le=20, description="Attempts to deliver an alert to a webhook.")
    delivery_backoff_seconds: float = Field(
        default=1.0, gt=0, le=300, description="First wait before retrying a delivery; doubles each attempt.",
    )
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Timeout of one webhook call.")
    delivery_stale_seconds: float = Field(
        default=900.0, gt=0, le=86400,
        description="An alert a sender took this long ago and never finished (its process died) is sent again.",
    )
    delivery_poll_seconds: float = Field(
        default=2.0, gt=0, le=300, description="How often the sender looks for alerts still to deliver.",
    )
