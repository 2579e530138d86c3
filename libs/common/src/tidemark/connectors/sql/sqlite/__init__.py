"""SQLite source (Python's own ``sqlite3``: no extra needed)."""

from tidemark.connectors.sql.sqlite.source import SQLiteConfig, SQLiteSource

__all__ = ["SQLiteConfig", "SQLiteSource"]
