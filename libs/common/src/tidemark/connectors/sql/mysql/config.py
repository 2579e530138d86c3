"""MySQL / MariaDB connection settings and the PyMySQL arguments they become."""

from __future__ import annotations

import ssl
from typing import Any

from pydantic import Field

from tidemark.connectors.sql.config import SqlConfig

# Seconds the server waits on a slow reader before dropping a streaming result: the
# writer may pause reading while it uploads a data file.
NET_WRITE_TIMEOUT = 3600


class MySQLConfig(SqlConfig):
    port: int = Field(default=3306, ge=1, le=65535, description="TCP port of the database server.")
    schemas: list[str] = Field(
        default_factory=list, description="Databases to include; only `database` when empty."
    )
    tables: list[str] = Field(
        default_factory=list, description="Streams (`database.table`) to include; all in `schemas` when empty."
    )

    columnar: bool = Field(
        default=True,
        description="Read rows with connectorx straight into Arrow (several times faster); false reads them with "
                    "PyMySQL. Connections that use TLS are always read with PyMySQL.",
    )

    def databases(self) -> list[str]:
        return self.schemas or [self.database]


def tls_context(config: SqlConfig) -> ssl.SSLContext | None:
    """The TLS context for ``tls_mode``; PyMySQL falls back to plain TCP when the server
    offers no TLS, so ``require`` and stricter are also verified after connecting."""
    if config.tls_mode == "disable":
        return None
    if config.tls_mode in ("prefer", "require"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cadata=config.tls_ca) if config.tls_ca else ssl.create_default_context()
    ctx.check_hostname = config.tls_mode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def connect_args(config: SqlConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "user": config.user,
        "password": config.password.get_secret_value(),
        "database": config.database,
        "charset": "utf8mb4",
        "connect_timeout": config.connect_timeout_seconds,
        "ssl": tls_context(config),
        "init_command": f"SET time_zone = '+00:00', net_write_timeout = {NET_WRITE_TIMEOUT}",
        "program_name": "tidemark",
    }
