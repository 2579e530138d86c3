"""MySQL and MariaDB source."""

from tidemark.connectors.mysql.config import MySQLConfig
from tidemark.connectors.mysql.source import MySQLSource

__all__ = ["MySQLConfig", "MySQLSource"]
