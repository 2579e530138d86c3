"""SQL Server source (extra ``mssql``: pymssql)."""

from tidemark.connectors.drivers import require

require("mssql", "pymssql")

from tidemark.connectors.sql.mssql.source import MssqlConfig, MssqlSource  # noqa: E402

__all__ = ["MssqlConfig", "MssqlSource"]
