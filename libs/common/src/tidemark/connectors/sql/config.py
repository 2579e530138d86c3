"""Connection fields every SQL source has."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from tidemark.connectors.base import ConnectorConfig

TlsMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]


class SqlConfig(ConnectorConfig):
    """Connection fields every SQL source has; each database sets its own default port."""

    host: str = Field(description="Host name or IP address of the database server.")
    port: int = Field(ge=1, le=65535, description="TCP port of the database server.")
    database: str = Field(description="Database to connect to.")
    user: str = Field(description="User to connect as; it needs SELECT on the tables to read.")
    password: SecretStr = Field(default=SecretStr(""), description="Password of `user` (empty: none).")
    tls_mode: TlsMode = Field(
        default="prefer",
        description="`disable`, `prefer` (TLS when the server offers it), `require` (TLS, unverified), "
                    "`verify-ca` (TLS, server certificate signed by `tls_ca`), "
                    "`verify-full` (and its name matches `host`).",
    )
    tls_ca: str | None = Field(
        default=None, description="PEM of the CA certificate(s) that sign the server's certificate (verify modes)."
    )
    schemas: list[str] = Field(default_factory=list, description="Schemas to include; all readable ones when empty.")
    tables: list[str] = Field(
        default_factory=list, description="Streams (`schema.table`) to include; all in `schemas` when empty."
    )
    batch_size: int = Field(default=50_000, ge=1, le=1_000_000, description="Most rows in one Arrow batch.")
    connect_timeout_seconds: int = Field(default=10, ge=1, le=300, description="Give up connecting after this long.")
