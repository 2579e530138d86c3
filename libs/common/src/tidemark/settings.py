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
        default=None,
        description="An `admin` bearer token every service accepts for /v1 routes (the embedded platform's token).",
    )
    internal_token: SecretStr | None = Field(
        default=None,
        description="A bearer token for service-to-service routes (/internal); never give it to users.",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024,
        description="Largest request body the API accepts, in bytes; a larger one is a 413 problem response.",
    )
    max_json_depth: int = Field(
        default=64, ge=8, le=10_000,
        description="Deepest nesting of arrays and objects a JSON request body may have; deeper is a 413.",
    )
    egress_allow: str = Field(
        default="",
        description="Comma-separated networks (`10.1.0.0/16`, `127.0.0.1`) and host names (`minio.internal`) that "
                    "REST and file sources may reach although they are loopback, private, link-local or cloud "
                    "metadata addresses, which are refused otherwise (docs/connectors/README.md, \"Endpoints sources "
                    "may reach\").",
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
        default="tidemark",
        description="Prefix of every topic (`<prefix>.runs`, ...) and consumer group (`<prefix>-<service>.<purpose>`): "
                    "installations sharing one Kafka cluster keep apart by giving each its own prefix.",
    )
    enable_idempotence: bool = Field(
        default=False,
        description="Use Kafka's idempotent producer. Needs a broker with InitProducerId.",
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(default=3_000, ge=100, description="Consumer group heartbeat interval.")
    fetch_max_wait_ms: int = Field(
        default=500, ge=10, le=30_000,
        description="How long the broker may hold a consumer's fetch while no new message is there. Kafka "
                    "answers as soon as one arrives; the local broker (tansu) waits the whole time, so embedded "
                    "mode uses 100 ms.",
    )
    partitions: int = Field(default=3, ge=1, description="Partitions of topics Tidemark creates.")
    replication_factor: int = Field(default=1, ge=1, description="Replication of topics Tidemark creates.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="SSL and SASL_SSL: a PEM file of the CA(s) that signed the brokers' certificates. "
                    "Empty means the system's trusted CAs.",
    )
    sasl_mechanism: str | None = Field(default=None, description="SASL mechanism, e.g. PLAIN or SCRAM-SHA-512.")
    sasl_username: str | None = Field(default=None, description="SASL user.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")

    def consumer_group(self, service: str, purpose: str) -> str:
        # Groups share the cluster's namespace just as topics do: two installations (or two tests) with
        # one group id would split each other's partitions and stall in each other's rebalances.
        return f"{self.topic_prefix}-{service}.{purpose}"


class AuthSettings(BaseModel):
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer tokens accepted on /v1 routes (hashed on load), each `name:scope:token` with scope "
                    "`read`, `write` or `admin`; a bare token (no name and scope) is an `admin` token.",
    )
    token_hashes: list[str] = Field(
        default_factory=list,
        description="SHA-256 hex digests of accepted bearer tokens, each `name:scope:<digest>` or a bare digest "
                    "(`admin`).",
    )
    tokens_file: Path | None = Field(
        default=None,
        description="A file with one token per line (`name:scope:token`, `name:scope:sha256:<digest>`, or a bare "
                    "token, which is `admin`; `#` starts a comment), e.g. a mounted Kubernetes Secret. Read on "
                    "start-up and again every `refresh_seconds`: an edited Secret needs no restart.",
    )
    refresh_seconds: float = Field(
        default=2.0, gt=0, le=300,
        description="How often each replica reloads its table of API-issued tokens (its peers may have consumed "
                    "a `token.revoked` event) and re-reads `tokens_file`: the longest a revoked token still "
                    "works on a replica that did not consume the event itself.",
    )


class ServiceSettings(BaseSettings):
    """Base of every service's settings; subclasses set ``service_name`` and the env prefix."""

    service_name: ClassVar[str] = "service"
    serves_api: ClassVar[bool] = True
    """False for a process that serves no API (a worker): production then asks for no API token."""

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
            if self.serves_api and not (self.auth.tokens or self.auth.token_hashes or self.auth.tokens_file
                                        or self.platform.api_token):
                raise ValueError("auth: production needs at least one API token")
            if self.bus == "memory":
                raise ValueError("bus: the in-process bus is not for production")
        return self
