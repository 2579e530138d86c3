from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class SchemaSettings(ServiceSettings):
    """Settings of schema-svc; env prefix ``TIDEMARK_SCHEMA__``."""

    service_name: ClassVar[str] = "schema"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_SCHEMA__", env_nested_delimiter="__", extra="ignore")

    connector_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of connector-svc; schema-svc asks its internal route for a connection's config "
                    "(with the platform's internal token) and then reads the source's catalog itself.",
    )
    poll_enabled: bool = Field(
        default=True, description="Poll watched connections for schema changes in the background.",
    )
    poll_interval_seconds: int = Field(
        default=60, ge=1, le=86400,
        description="How often each watched connection is polled, unless it sets its own interval.",
    )
    poll_tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the poller looks for connections that are due.",
    )
    max_concurrent_polls: int = Field(default=4, ge=1, le=64, description="Connections polled at the same time.")
