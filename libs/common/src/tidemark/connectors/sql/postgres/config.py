"""PostgreSQL connection settings and the libpq parameters they become."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import quote, urlencode

from pydantic import Field

from tidemark.connectors.sql.config import SqlConfig

# Every session a source opens is read-only and speaks UTC and ISO 8601 intervals,
# so values never depend on the server's or the role's defaults.
SESSION_OPTIONS = "-c default_transaction_read_only=on -c TimeZone=UTC -c IntervalStyle=iso_8601"


class PostgresConfig(SqlConfig):
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port of the database server.")
    engine: Literal["adbc", "psycopg"] = Field(
        default="adbc",
        description="How rows are read: `adbc` streams Arrow over binary COPY (fastest); "
                    "`psycopg` reads rows, for servers that speak the protocol but not COPY.",
    )


@contextmanager
def libpq_params(config: SqlConfig, options: str | None = SESSION_OPTIONS) -> Iterator[dict[str, str]]:
    """libpq keywords for ``config``; a CA certificate given as PEM lives in a temporary file
    for as long as the context (libpq only reads it from a file)."""
    params = {
        "host": config.host,
        "port": str(config.port),
        "dbname": config.database,
        "user": config.user,
        "sslmode": config.tls_mode,
        "connect_timeout": str(config.connect_timeout_seconds),
        "application_name": "tidemark",
    }
    password = config.password.get_secret_value()
    if password:
        params["password"] = password
    if options:
        params["options"] = options
    ca_path: str | None = None
    if config.tls_ca:
        fd, ca_path = tempfile.mkstemp(prefix="tidemark-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as handle:
            handle.write(config.tls_ca)
        params["sslrootcert"] = ca_path
    elif config.tls_mode in ("verify-ca", "verify-full"):
        params["sslrootcert"] = "system"
    try:
        yield params
    finally:
        if ca_path is not None:
            os.unlink(ca_path)


def libpq_uri(params: dict[str, str]) -> str:
    """The same parameters as a ``postgresql://`` URI (ADBC takes a URI)."""
    host = params["host"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    auth = quote(params["user"], safe="")
    if "password" in params:
        auth += ":" + quote(params["password"], safe="")
    query = {k: v for k, v in params.items() if k not in ("host", "port", "dbname", "user", "password")}
    database = quote(params["dbname"], safe="")
    return f"postgresql://{auth}@{host}:{params['port']}/{database}?{urlencode(query, quote_via=quote)}"
