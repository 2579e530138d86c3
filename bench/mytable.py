"""The benchmark's MariaDB table (the 11-column shape), generated once into its own database.

A marker table records the generator's version and row count, so a later run with the same
``BENCH_ROWS`` reuses it. The ceiling is the ``mariadb`` client streaming the table (``--quick``:
row by row, no buffering) into /dev/null.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from shapes import MYSQL_CREATE, MYSQL_FILL, MYSQL_TABLE

VERSION = "v1"
DATABASE = "tidemark_bench_my"
STEP = 500_000


@dataclass(frozen=True)
class MyServer:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"

    def connect(self, database: str | None = None) -> Any:
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password="", database=database,
                               autocommit=True, init_command="SET time_zone = '+00:00'")


def marker(rows: int) -> str:
    return f"tidemark-bench-my {VERSION} rows={rows}"


def ensure(server: MyServer, rows: int, log: Callable[[str], None]) -> None:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        cur.execute("CREATE TABLE IF NOT EXISTS bench_marker (marker varchar(100))")
        cur.execute("SELECT marker FROM bench_marker")
        found = cur.fetchone()
        if found and found[0] == marker(rows):
            log(f"reusing the generated MariaDB table in {DATABASE} ({marker(rows)})")
            return
        log(f"generating {rows:,} rows into MariaDB database {DATABASE} (cached for later runs)")
        started = time.perf_counter()
        cur.execute("DELETE FROM bench_marker")
        cur.execute(f"DROP TABLE IF EXISTS {MYSQL_TABLE}")
        cur.execute(MYSQL_CREATE)
        for low in range(1, rows + 1, STEP):
            cur.execute(MYSQL_FILL.format(low=low, high=min(rows, low + STEP - 1)))
        cur.execute(f"ANALYZE TABLE {MYSQL_TABLE}")
        cur.fetchall()
        cur.execute(f"SELECT count(*) FROM {MYSQL_TABLE}")  # noqa: S608
        (count,) = cur.fetchone()
        if count != rows:
            raise RuntimeError(f"generated {count} rows, wanted {rows}")
        cur.execute("INSERT INTO bench_marker VALUES (%s)", [marker(rows)])
        log(f"generated in {time.perf_counter() - started:.1f} s")


def ceiling(server: MyServer) -> float:
    """Seconds for the mariadb client to stream the whole table into /dev/null, unbuffered."""
    command = ["mariadb", "--quick", "-h", server.host, "-P", str(server.port), "-u", server.user, DATABASE,
               "-e", f"SELECT * FROM {MYSQL_TABLE}"]  # noqa: S608 - a constant identifier
    started = time.perf_counter()
    with open("/dev/null", "wb") as sink:
        subprocess.run(command, stdout=sink, check=True)
    return time.perf_counter() - started


def summary(server: MyServer) -> dict[str, Any]:
    with server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT id), max(updated_at) FROM {MYSQL_TABLE}")  # noqa: S608
        rows, ids, newest = cur.fetchone()
    return {"rows": rows, "ids": ids, "max_updated_at": newest.isoformat()}
