"""Database helpers: engines, sessions, column types, Alembic runner."""

from tidemark.db.engine import create_engine, session_factory
from tidemark.db.errors import unavailable
from tidemark.db.types import JSONType, UTCDateTime, utcnow

__all__ = ["JSONType", "UTCDateTime", "create_engine", "session_factory", "unavailable", "utcnow"]
