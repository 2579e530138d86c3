"""A connector whose driver is not installed says which extra of tidemark-common installs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Runs in a fresh interpreter where the given driver modules cannot be imported.
PROBE = """
import json, sys
for name in sys.argv[2:]:
    sys.modules[name] = None
from tidemark.connectors import get_connector
from tidemark.errors import ConfigError
try:
    get_connector(sys.argv[1])
except ConfigError as exc:
    print(json.dumps({"loaded": False, "message": exc.message, "field": exc.detail.get("field")}))
else:
    print(json.dumps({"loaded": True}))
"""
DRIVERS = ["adbc_driver_manager", "adbc_driver_postgresql", "psycopg", "pymysql", "pymssql"]


def load_without(connector_type: str, *missing: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, connector_type, *missing],
                          capture_output=True, text=True, timeout=60, check=True)
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@pytest.mark.parametrize(("connector_type", "missing", "extra"), [
    ("postgres", "adbc_driver_postgresql", "postgres"),
    ("postgres", "psycopg", "postgres"),
    ("mysql", "pymysql", "mysql"),
    ("mariadb", "pymysql", "mysql"),
    ("mssql", "pymssql", "mssql"),
    ("redshift", "psycopg", "redshift"),
])
def test_a_missing_driver_names_the_extra_that_installs_it(connector_type: str, missing: str, extra: str) -> None:
    answer = load_without(connector_type, missing)
    assert answer["loaded"] is False
    assert f"pip install 'tidemark-common[{extra}]'" in str(answer["message"])
    assert repr(missing) in str(answer["message"])
    assert answer["field"] == "type"


def test_sqlite_needs_no_driver_and_every_driver_loads_when_installed() -> None:
    assert load_without("sqlite", *DRIVERS) == {"loaded": True}
    for connector_type in ("postgres", "mysql", "mssql", "redshift"):
        assert load_without(connector_type) == {"loaded": True}
