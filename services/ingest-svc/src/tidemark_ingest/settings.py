from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tidemark import __version__
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
    worker_image: str = Field(
        default=f"tidemark:{__version__}",
        description="The container image a worker runs in (the Kubernetes launcher; `local` runs this install).",
    )
    stop_grace_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="How long a worker being stopped (its run cancelled or timed out) gets after SIGTERM "
                    "before SIGKILL. When the service stops, its workers get this long to finish, then "
                    "SIGTERM, then this long again before SIGKILL.",
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
