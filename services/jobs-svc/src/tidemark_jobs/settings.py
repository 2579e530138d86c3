from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class JobsSettings(ServiceSettings):
    """Settings of jobs-svc; env prefix ``TIDEMARK_JOBS__``."""

    service_name: ClassVar[str] = "jobs"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_JOBS__", env_nested_delimiter="__", extra="ignore")

    logs_per_run: int = Field(
        default=2000, ge=10, le=100_000,
        description="Worker log records kept per run: the newest ones; older ones are dropped and counted.",
    )
    metrics_refresh_seconds: float = Field(
        default=15.0, gt=0, le=3600,
        description="How often the run gauges (/metrics) are refreshed from the read model.",
    )
    page_refresh_seconds: int = Field(
        default=5, ge=1, le=3600, description="How often the /jobs page refreshes itself while it is open.",
    )
