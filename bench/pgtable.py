"""The benchmark's PostgreSQL table: generated once into a cache database, cloned fresh for each run.

Generating 5 million rows takes about a minute, so the generated table lives in a
template database (``tidemark_bench_cache``) whose comment records the generator's
version and the row count. Each run clones it into a fresh database
(``CREATE DATABASE ... TEMPLATE``, a file copy), changes rows there, and drops it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Protocol

import psycopg
from psycopg import sql

VERSION = "v1"
CACHE_DB = "tidemark_bench_cache"
RUN_DB = "tidemark_bench_run"
TABLE = "bench_events"

# bigint key, text, numeric, timestamptz cursor, boolean, jsonb and a nullable text (NULL in half the rows).
CREATE = f"""
CREATE TABLE {TABLE} (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    updated_at  timestamptz NOT NULL,
    active      boolean NOT NULL,
    payload     jsonb NOT NULL,
    note        text
)"""

FILL = f"""
INSERT INTO {TABLE}
SELECT g,
       'customer ' || g,
       ((g * 7919) %% 1000000) / 100.0,
       timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second',
       g %% 3 = 0,
       jsonb_build_object('id', g, 'kind', (ARRAY['order', 'refund', 'visit'])[1 + g %% 3],
                          'score', (g * 31) %% 1000, 'tags', jsonb_build_array('a', 'b')),
       CASE WHEN g %% 2 = 0 THEN NULL ELSE md5(g::text) END
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g"""  # noqa: S608 - constant identifiers; values are parameters

# The cursor column is indexed (ensure_cache), as it would be on any table read incrementally.


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"

    def conninfo(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo("postgres"), autocommit=True)


class ShapeLike(Protocol):
    name: str
    table: str
    create: str
    fill: str


def marker(rows: int) -> str:
    return f"tidemark-bench {VERSION} rows={rows}"


def cache_db(shape: ShapeLike | None) -> str:
    """The narrow table keeps the first round's cache database; every other shape has its own."""
    return CACHE_DB if shape is None or shape.name == "narrow" else f"{CACHE_DB}_{shape.name}"


def _cached_marker(server: Server, name: str) -> str | None:
    with server.admin() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
    return row[0] if row else None


def _drop(server: Server, name: str) -> None:
    with server.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ensure_cache(server: Server, rows: int, log: callable, shape: ShapeLike | None = None) -> None:  # type: ignore[valid-type]
    """Make the shape's cache database hold exactly ``rows`` generated rows (reuse it when it does)."""
    name = cache_db(shape)
    table = TABLE if shape is None else shape.table
    if _cached_marker(server, name) == marker(rows):
        log(f"reusing the generated table in database {name} ({marker(rows)})")
        return
    log(f"generating {rows:,} rows into database {name} (cached for later runs)")
    started = time.perf_counter()
    _drop(server, name)
    with server.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(server.conninfo(name), autocommit=True) as conn:
        conn.execute(CREATE if shape is None else shape.create)
        conn.execute("SELECT setseed(0.42)")
        step = 1_000_000
        for low in range(1, rows + 1, step):
            conn.execute(FILL if shape is None else shape.fill, {"low": low, "high": min(rows, low + step - 1)})
        conn.execute(f"CREATE INDEX {table}_updated_at ON {table} (updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        if count is None or count[0] != rows:
            raise RuntimeError(f"generated {count} rows, wanted {rows}")
    with server.admin() as conn:
        # The marker goes on last: an interrupted generation is never reused.
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name),
                                                                    sql.Literal(marker(rows))))
    log(f"generated in {time.perf_counter() - started:.1f} s")


def fresh_copy(server: Server, shape: ShapeLike | None = None) -> None:
    """A new database ``tidemark_bench_run`` cloned from the shape's cache (file copy, no WAL replay)."""
    _drop(server, RUN_DB)
    with server.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(RUN_DB), sql.Identifier(cache_db(shape))))
    with psycopg.connect(server.conninfo(RUN_DB), autocommit=True) as conn:
        # Reads every page once, so every tool below starts from the same warm cache.
        conn.execute(f"SELECT count(*) FROM {TABLE if shape is None else shape.table}").fetchone()  # noqa: S608


def drop_copy(server: Server) -> None:
    _drop(server, RUN_DB)


def drop_cache(server: Server) -> None:
    _drop(server, CACHE_DB)


def count_rows(server: Server, table: str = TABLE) -> int:
    with psycopg.connect(server.conninfo(RUN_DB)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def copy_ceiling(server: Server, table: str = TABLE) -> float:
    """Seconds for psql to stream the whole table as binary COPY into /dev/null."""
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port),
               "-U", server.user, "-d", RUN_DB, "-c", f"COPY {table} TO STDOUT (FORMAT binary)"]
    started = time.perf_counter()
    with open("/dev/null", "wb") as sink:
        subprocess.run(command, stdout=sink, check=True)
    return time.perf_counter() - started


# Which rows an incremental run finds changed:
# - "recent": the age of a changed row (newest = 0) is exponential with a mean of 2% of the table,
#   the usual shape of an orders or events table: new rows get updated, old ones rarely;
# - "uniform": every row equally likely, the worst case for copy-on-write files.
DISTRIBUTIONS = {
    "recent": "greatest(1, %(rows)s - floor(-ln(1 - random()) * %(rows)s * 0.02)::bigint)",
    "uniform": "1 + floor(random() * %(rows)s)::bigint",
}


def change_rows(server: Server, rows: int, fraction: float, distribution: str, seed: int,
                table: str = TABLE, change: str = "amount = t.amount + 1, active = NOT t.active") -> int:
    """Update ``fraction`` of the rows (``change`` and the cursor); return how many changed."""
    wanted = max(1, int(rows * fraction))
    draw = DISTRIBUTIONS[distribution]
    statement = f"""
        WITH picked AS (
            SELECT DISTINCT {draw} AS id FROM generate_series(1, %(draws)s)
            LIMIT %(wanted)s
        )
        UPDATE {table} t
        SET {change}, updated_at = clock_timestamp()
        FROM picked WHERE t.id = picked.id"""  # noqa: S608 - constant identifiers; values are parameters
    with psycopg.connect(server.conninfo(RUN_DB), autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", [seed / 10])
        # Draw extra ids so that after removing duplicates at least ``wanted`` remain.
        cur = conn.execute(statement, {"rows": rows, "draws": wanted * 4, "wanted": wanted})
        changed = cur.rowcount
        conn.execute(f"VACUUM ANALYZE {table}")
    return changed
