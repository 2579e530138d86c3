"""MySQL and MariaDB source (extra ``mysql``: PyMySQL and connectorx)."""

from tidemark.connectors.drivers import require

require("mysql", "pymysql", "connectorx")

from tidemark.connectors.sql.mysql.config import MySQLConfig  # noqa: E402
from tidemark.connectors.sql.mysql.source import MySQLSource  # noqa: E402

__all__ = ["MySQLConfig", "MySQLSource"]
