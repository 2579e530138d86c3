"""PostgreSQL source."""

from tidemark.connectors.postgres.config import PostgresConfig
from tidemark.connectors.postgres.source import PostgresSource

__all__ = ["PostgresConfig", "PostgresSource"]
