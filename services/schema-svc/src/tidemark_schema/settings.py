from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class SchemaSettings(ServiceSettings):
    """Settings of schema-svc; env prefix ``TIDEMARK_SCHEMA__``."""

    service_name: ClassVar[str] = "schema"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_SCHEMA__", env_nested_delimiter="__", extra="ignore")
