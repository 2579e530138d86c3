"""PostgreSQL source (extra ``postgres``: ADBC for COPY reads, psycopg for the catalog)."""

from tidemark.connectors.drivers import require

require("postgres", "adbc_driver_manager", "adbc_driver_postgresql", "psycopg")

from tidemark.connectors.sql.postgres.config import PostgresConfig  # noqa: E402
from tidemark.connectors.sql.postgres.source import PostgresSource  # noqa: E402

__all__ = ["PostgresConfig", "PostgresSource"]
