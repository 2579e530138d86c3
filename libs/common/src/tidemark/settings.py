"""Settings shared by every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``TIDEMARK_<SERVICE>__``); nested groups use ``__`` as well, e.g.
``TIDEMARK_CONNECTOR__DATABASE__URL``. A few values every process shares
(home directory, API token, environment) come from :class:`PlatformSettings`
(prefix ``TIDEMARK_``). Nothing here is read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class PlatformSettings(BaseSettings):
    """Values every Tidemark process shares."""

    model_config = SettingsConfigDict(env_prefix="TIDEMARK_", extra="ignore")

    home: Path = Field(
        default=Path(".tidemark"),
        description="Directory for embedded-mode state: SQLite databases, warehouse, token, keys.",
    )
    environment: Environment = Field(
        default="development",
        description="`production` refuses unsafe defaults (SQLite, no API tokens, generated keys).",
    )
    api_token: SecretStr | None = Field(
        default=None, description="A bearer token every service accepts for /v1 routes."
    )
    internal_token: SecretStr | None = Field(
        default=None,
        description="A bearer token for service-to-service routes (/internal); never give it to users.",
    )


class DatabaseSettings(BaseModel):
    url: str = Field(
        default="",
        description=(
            "SQLAlchemy async URL of the service's own database: `sqlite+aiosqlite:///path.db` "
            "(embedded) or `postgresql+asyncpg://user:pass@host/db` (production). "
            "Empty means a SQLite file under the home directory."
        ),
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    pool_size: int = Field(default=5, ge=1, le=100, description="Connections kept open (PostgreSQL).")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    topic_prefix: str = Field(
        default="tidemark", description="Prefix of every topic (`<prefix>.runs`, ...)."
    )
    enable_idempotence: bool = Field(
        default=False,
        description="Use Kafka's idempotent producer. Needs a broker with InitProducerId.",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(default=3_000, ge=100, description="Consumer group heartbeat interval.")
    partitions: int = Field(default=3, ge=1, description="Partitions of topics Tidemark creates.")
    replication_factor: int = Field(default=1, ge=1, description="Replication of topics Tidemark creates.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: str | None = Field(default=None, description="SASL mechanism, e.g. PLAIN or SCRAM-SHA-512.")
    sasl_username: str | None = Field(default=None, description="SASL user.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")


class AuthSettings(BaseModel):
    tokens: list[SecretStr] = Field(
        default_factory=list, description="Bearer tokens accepted on /v1 routes (hashed on load)."
    )
    token_hashes: list[str] = Field(
        default_factory=list, description="SHA-256 hex digests of accepted bearer tokens."
    )
    tokens_file: Path | None = Field(
        default=None,
        description="A file with one token per line, e.g. a mounted Kubernetes Secret. Read on start-up.",
    )


class ServiceSettings(BaseSettings):
    """Base of every service's settings; subclasses set ``service_name`` and the env prefix."""

    service_name: ClassVar[str] = "service"

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True)

    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Shared values.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Own database.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="API authentication.")
    bus: Literal["kafka", "memory"] = Field(
        default="kafka",
        description="`memory` is the in-process bus for single-process runs and unit tests only.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    log_format: Literal["json", "text"] = Field(default="json", description="Structured JSON or plain text.")
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the outbox relay looks for unsent events."
    )

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> Self:
        if not self.database.url:
            path = self.platform.home / f"{self.service_name}.db"
            self.database.url = f"sqlite+aiosqlite:///{path}"
        if self.platform.environment == "production":
            if self.database.url.startswith("sqlite"):
                raise ValueError("database.url: SQLite is for embedded mode; production needs PostgreSQL")
            if not (self.auth.tokens or self.auth.token_hashes or self.auth.tokens_file
                    or self.platform.api_token):
                raise ValueError("auth: production needs at least one API token")
            if self.bus == "memory":
                raise ValueError("bus: the in-process bus is not for production")
        return self
