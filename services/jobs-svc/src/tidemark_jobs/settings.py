from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class JobsSettings(ServiceSettings):
    """Settings of jobs-svc; env prefix ``TIDEMARK_JOBS__``."""

    service_name: ClassVar[str] = "jobs"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_JOBS__", env_nested_delimiter="__", extra="ignore")
