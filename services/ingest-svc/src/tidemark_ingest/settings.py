from __future__ import annotations

import os
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tidemark.lakehouse import LakehouseSettings
from tidemark.settings import ServiceSettings

ENV_PREFIX = "TIDEMARK_INGEST__"


class IngestSettings(ServiceSettings):
    """Settings of ingest-svc and of the workers it launches; env prefix ``TIDEMARK_INGEST__``."""

    service_name: ClassVar[str] = "ingest"
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    lakehouse: LakehouseSettings = Field(
        default_factory=LakehouseSettings, description="Iceberg catalog and warehouse the workers write to."
    )
    connector_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of connector-svc; workers fetch connection configs from its internal route.",
    )
    launcher: Literal["local"] = Field(
        default="local", description="How workers run: `local` starts a subprocess per run."
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How often a worker records that it is alive."
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A run whose worker was silent this long is failed."
    )

    @model_validator(mode="after")
    def _lakehouse_and_liveness(self) -> Self:
        self.lakehouse = self.lakehouse.resolve(self.platform.home)
        if self.heartbeat_timeout_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                "heartbeat_timeout_seconds must exceed twice heartbeat_seconds, "
                "or one late heartbeat fails a healthy run"
            )
        if self.platform.environment == "production" and self.lakehouse.uses_sqlite:
            raise ValueError("lakehouse.catalog_uri: the SQLite catalog is for embedded mode; "
                             "production needs PostgreSQL or a REST catalog")
        return self

    def worker_environment(self) -> dict[str, str]:
        """The environment of a worker process: this process's, with our own values made explicit,
        so a worker sees exactly the settings this service runs with (also when they came from code)."""
        owned = (f"{ENV_PREFIX}DATABASE__", f"{ENV_PREFIX}LAKEHOUSE__")
        env = {k: v for k, v in os.environ.items() if not k.startswith(owned)}
        lake = self.lakehouse
        env.update({
            "TIDEMARK_HOME": str(self.platform.home.expanduser().resolve()),
            "TIDEMARK_ENVIRONMENT": self.platform.environment,
            f"{ENV_PREFIX}DATABASE__URL": self.database.url,
            f"{ENV_PREFIX}CONNECTOR_URL": self.connector_url,
            f"{ENV_PREFIX}LAUNCHER": self.launcher,
            f"{ENV_PREFIX}HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            f"{ENV_PREFIX}HEARTBEAT_TIMEOUT_SECONDS": str(self.heartbeat_timeout_seconds),
            f"{ENV_PREFIX}LOG_LEVEL": self.log_level,
            f"{ENV_PREFIX}LOG_FORMAT": self.log_format,
            f"{ENV_PREFIX}BUS": self.bus,
        })
        env.update(lake.environment(f"{ENV_PREFIX}LAKEHOUSE__"))
        token = self.platform.internal_token
        if token is not None:
            env["TIDEMARK_INTERNAL_TOKEN"] = token.get_secret_value()
        else:
            env.pop("TIDEMARK_INTERNAL_TOKEN", None)
        return env
