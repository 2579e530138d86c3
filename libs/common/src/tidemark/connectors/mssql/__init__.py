"""SQL Server source."""

from tidemark.connectors.mssql.source import MssqlConfig, MssqlSource

__all__ = ["MssqlConfig", "MssqlSource"]
