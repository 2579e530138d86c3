"""Amazon Redshift source (extra ``redshift``: psycopg, and the PostgreSQL connector it builds on)."""

from tidemark.connectors.drivers import require

require("redshift", "psycopg", "adbc_driver_manager", "adbc_driver_postgresql")

from tidemark.connectors.sql.redshift.source import RedshiftConfig, RedshiftSource  # noqa: E402

__all__ = ["RedshiftConfig", "RedshiftSource"]
