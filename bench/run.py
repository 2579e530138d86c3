"""`make bench`: SQL tables → Iceberg, Tidemark against each source's own ceiling and dlt, per table shape.

For every shape (``shapes.py``): the server's binary COPY into /dev/null (the ceiling), Tidemark's
Full Refresh, the first run of an incremental stream (into an empty table: every resync is
the same read), and dlt's backends, each checked against the source (rows, distinct keys, the
largest cursor). On ``narrow`` and ``wide`` also an incremental run after 1% of the rows changed
uniformly, and one more after nothing changed (it must commit nothing). ``mysql``: the wide
shape in MariaDB against ``mariadb --quick`` and dlt.

Environment: ``BENCH_ROWS`` (rows per table, default 5,000,000), ``BENCH_SHAPES`` (default every
shape: ``narrow,wide,text,numeric,jsonb,cols60,mysql``), ``BENCH_DLT`` (dlt backends, default
``connectorx``; ``connectorx,pyarrow`` adds the slower one; empty skips dlt), ``BENCH_REPEATS``
(ceiling and Full Refresh runs per shape, the fastest kept, default 2), ``BENCH_DOCS`` (``0``
leaves docs/benchmarks.md alone), ``BENCH_KEEP`` (``1`` keeps the output under .bench/),
``BENCH_CHANGED_REPEATS`` (runs of the same 1%-changed merge, each from the same table, the fastest
kept; default 1).
The last line printed is machine-readable (``BENCH rows=... worst_shape=...``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mytable
import pgtable
import pyarrow.compute as pc
import report
from pgtable import RUN_DB, Server
from shapes import MYSQL_TABLE, PG_SHAPES, Shape

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
DLT_ENV = WORK / "dlt"
DLT_REQUIREMENTS = ["dlt[parquet,sql_database,filesystem]==1.31.0", "connectorx==0.4.6", "psycopg2-binary==2.9.13",
                    "pymysql==1.1.2", "matplotlib==3.11.2"]
DLT_CHUNK = 100_000
CHANGED = 0.01
ALL_SHAPES = [*PG_SHAPES, "mysql"]
# Targets of issue 13, checked per shape in the same run.
CEILING_TARGET, DLT_TARGET, RSS_TARGET_MB, CHANGED_TARGET = 0.75, 1.3, 400, 0.05


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@dataclass
class Measured:
    name: str
    seconds: float
    rows: int
    rss_mb: float | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class ShapeResult:
    """One shape's measurements; ratios compare throughput (higher is better for Tidemark)."""

    shape: str
    source: str
    what: str
    rows: int
    ceiling: Measured
    full: Measured
    first_incremental: Measured
    read_alone: Measured | None = None
    reader_floor: Measured | None = None
    dlt: dict[str, Measured] = field(default_factory=dict)
    changed: Measured | None = None
    noop: Measured | None = None
    noop_committed: bool | None = None
    dlt_failed: list[str] = field(default_factory=list)

    @property
    def ceiling_ratio(self) -> float:
        return self.ceiling.seconds / self.full.seconds

    @property
    def dlt_ratio(self) -> float | None:
        best = min((m.seconds for m in self.dlt.values()), default=None)
        return None if best is None else best / self.full.seconds

    @property
    def first_run_ratio(self) -> float:
        """First incremental run's time over Full Refresh's: 1.0 is "as fast"."""
        return self.first_incremental.seconds / self.full.seconds

    @property
    def peak_rss_mb(self) -> float:
        return max(m.rss_mb or 0.0 for m in (self.full, self.first_incremental))


def run_child(argv: list[str]) -> tuple[dict[str, Any], float]:
    """Run ``argv``; its last stdout line is JSON with the child's own peak RSS (``peak_rss_mb``, its
    VmHWM: wait4's ru_maxrss would count this parent's memory, which the child starts as a copy of)."""
    # Compiled bytecode is cached, as in any installed service; the timers start after imports anyway.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT, text=True, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"{argv[1]} failed with exit code {proc.returncode}")
    lines = [line for line in out.splitlines() if line.strip()]
    result = json.loads(lines[-1])
    return result, float(result["peak_rss_mb"])


def dlt_python() -> Path:
    """The dlt virtualenv, created (once) apart from the product's environment and lockfile."""
    python = DLT_ENV / "bin" / "python"
    stamp = DLT_ENV / "bench-requirements.txt"
    wanted = "\n".join(DLT_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"installing {', '.join(DLT_REQUIREMENTS)} into {DLT_ENV.relative_to(ROOT)}")
    uv = shutil.which("uv") or "uv"
    subprocess.run([uv, "venv", "-q", "--allow-existing", str(DLT_ENV), "--python", "3.11"], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *DLT_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


# -- one load, and its check against the source ------------------------------------------------------


def tidemark(conn: dict[str, Any], stream: str, home: Path, mode: str) -> tuple[dict[str, Any], float]:
    args = conn | {"stream": stream, "home": str(home), "mode": mode}
    return run_child([sys.executable, str(ROOT / "bench" / "tidemark_job.py"), json.dumps(args)])


def iceberg_summary(home: Path, identifier: str, with_amount: bool) -> dict[str, Any]:
    """What the Iceberg table holds, to compare with the source in aggregate."""
    from tidemark.lakehouse import Lakehouse
    from tidemark.lakehouse.settings import LakehouseSettings

    table = Lakehouse(LakehouseSettings().resolve(home)).catalog.load_table(identifier)
    fields = ("id", "updated_at", *(("amount",) if with_amount else ()))
    data = table.scan(selected_fields=fields).to_arrow()
    found = {"rows": data.num_rows, "ids": pc.count_distinct(data["id"]).as_py(),
             "max_updated_at": pc.max(data["updated_at"]).as_py().isoformat()}
    if with_amount:
        found["amount"] = str(pc.sum(data["amount"]).as_py())
    return found


def pg_summary(server: Server, table: str, with_amount: bool) -> dict[str, Any]:
    import psycopg

    amount = ", sum(amount)::text" if with_amount else ""
    with psycopg.connect(server.conninfo(RUN_DB)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        row = conn.execute(f"SELECT count(*), count(DISTINCT id), max(updated_at){amount} "  # noqa: S608
                           f"FROM {table}").fetchone()
    assert row is not None
    found = {"rows": row[0], "ids": row[1], "max_updated_at": row[2].isoformat()}
    if with_amount:
        found["amount"] = str(row[3])
    return found


def check_same(what: str, lake: dict[str, Any], source: dict[str, Any]) -> None:
    if lake != source:
        raise SystemExit(f"{what}: the Iceberg table differs from the source:\n  iceberg {lake}\n  source  {source}")
    log(f"{what}: Iceberg matches the source ({lake['rows']:,} rows, same ids and max cursor)")


def dlt_load(python: Path, backend: str, url: str, table: str, rows: int, conn: str | None = None) -> Measured | None:
    """dlt's load with ``backend``, best of ``BENCH_REPEATS`` like Tidemark's; None when dlt fails
    (reported, not fatal: it is the reference)."""
    runs = [_dlt_once(python, backend, url, table, rows, conn)
            for _ in range(int(os.environ.get("BENCH_REPEATS", "2")))]
    done = [m for m in runs if m is not None]
    return min(done, key=lambda m: m.seconds) if len(done) == len(runs) else None


def _dlt_once(python: Path, backend: str, url: str, table: str, rows: int, conn: str | None) -> Measured | None:
    target = WORK / f"dlt-{backend}"
    shutil.rmtree(target, ignore_errors=True)
    args = {"url": url, "table": table, "backend": backend, "chunk_size": DLT_CHUNK, "out": str(target),
            "conn": conn}
    try:
        out, rss = run_child([str(python), str(ROOT / "bench" / "dlt_job.py"), json.dumps(args)])
    except SystemExit as exc:
        log(f"dlt {backend} FAILED on {table} ({exc}); its error is above")
        return None
    if out["table_rows"] != rows:
        raise SystemExit(f"dlt {backend} reported success but its files hold {out['table_rows']} rows, not {rows}")
    log(f"dlt {backend}: {rows / out['seconds']:,.0f} rows/s ({out['seconds']:.2f} s), peak RSS {rss:.0f} MB, "
        f"{out['table_rows']:,} rows in {out['files']} files")
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(target, ignore_errors=True)
    return Measured(f"dlt sql_database ({backend}) → Parquet", out["seconds"], rows, rss)


# -- the shapes --------------------------------------------------------------------------------------


def measure(name: str, what: str, source: str, rows: int, repeats: int, conn: dict[str, Any], stream: str,
            ceiling: Any, summary: Any, with_amount: bool) -> ShapeResult:
    """Ceiling, Full Refresh and the first run of an incremental stream into an empty table, taking turns
    ``repeats`` times (the fastest of each kept: the machine is shared)."""
    home = WORK / f"tidemark-{name}"
    ceiling_runs, full_runs, full_rss, first_runs, first_rss, reads = [], [], 0.0, [], 0.0, []
    for attempt in range(repeats):
        ceiling_runs.append(ceiling())
        log(f"{name}: ceiling run {attempt + 1}: {rows / ceiling_runs[-1]:,.0f} rows/s ({ceiling_runs[-1]:.2f} s)")
        shutil.rmtree(home, ignore_errors=True)
        out, rss = tidemark(conn, stream, home, "full_refresh")
        if out["rows_written"] != rows:
            raise SystemExit(f"{name}: tidemark full refresh wrote {out['rows_written']} rows, not {rows}")
        check_same(f"{name} full refresh", iceberg_summary(home, out["table"], with_amount), summary())
        full_runs.append(out["seconds"])
        full_rss = max(full_rss, rss)
        log(f"{name}: Full Refresh run {attempt + 1}: {rows / out['seconds']:,.0f} rows/s ({out['seconds']:.2f} s), "
            f"peak RSS {rss:.0f} MB")
        # The first run of an incremental stream (every resync reads the same), into an empty table.
        shutil.rmtree(home, ignore_errors=True)
        out, rss = tidemark(conn, stream, home, "incremental")
        check_same(f"{name} first incremental run", iceberg_summary(home, out["table"], with_amount), summary())
        first_runs.append(out["seconds"])
        first_rss = max(first_rss, rss)
        log(f"{name}: first incremental run {attempt + 1}: {rows / out['seconds']:,.0f} rows/s "
            f"({out['seconds']:.2f} s), peak RSS {rss:.0f} MB")
        # Where a shape misses its ceiling ratio, this says whether reading or writing is the share that costs.
        out, rss = tidemark(conn, stream, home, "read")
        if out["rows_read"] != rows:
            raise SystemExit(f"{name}: the read alone returned {out['rows_read']} rows, not {rows}")
        reads.append(Measured("Tidemark's read alone (nothing written)", out["seconds"], rows, rss))
        log(f"{name}: read alone {attempt + 1}: {rows / out['seconds']:,.0f} rows/s ({out['seconds']:.2f} s)")
    return ShapeResult(
        shape=name, source=source, what=what, rows=rows,
        ceiling=Measured(f"{source} (ceiling)", min(ceiling_runs), rows),
        full=Measured("Tidemark Full Refresh → Iceberg", min(full_runs), rows, full_rss),
        first_incremental=Measured("Tidemark incremental, first run → Iceberg", min(first_runs), rows, first_rss),
        read_alone=min(reads, key=lambda m: m.seconds),
    )


def changed_then_noop(result: ShapeResult, server: Server, shape: Shape, conn: dict[str, Any], stream: str) -> None:
    """1% of the rows changed uniformly, then an incremental run; then one more with nothing changed."""
    home = WORK / f"tidemark-{shape.name}"  # holds the first incremental run's table and cursor
    changed = pgtable.change_rows(server, result.rows, CHANGED, "uniform", 2, table=shape.table)
    repeats = int(os.environ.get("BENCH_CHANGED_REPEATS", "1"))
    saved = home.with_name(home.name + "-before-change")
    if repeats > 1:
        # Each repeat merges the same changes into the same table: the warehouse (catalog included,
        # whose paths point into ``home``) is put back as it was before the first.
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(home, saved)
    runs = []
    for attempt in range(repeats):
        if attempt:
            shutil.rmtree(home)
            shutil.copytree(saved, home)
        runs.append(tidemark(conn, stream, home, "incremental"))
        log(f"{shape.name}: incremental after 1% changed, run {attempt + 1}: {runs[-1][0]['seconds']:.2f} s")
    shutil.rmtree(saved, ignore_errors=True)
    # The fastest run's time; the table checked below is the last run's (every run merged the same rows).
    out = min((run[0] for run in runs), key=lambda run: run["seconds"])
    rss = max(run[1] for run in runs)
    if out["rows_read"] < changed:
        raise SystemExit(f"{shape.name}: incremental read {out['rows_read']} rows, but {changed} changed")
    check_same(f"{shape.name} incremental (1% uniform)", iceberg_summary(home, out["table"], True),
               pg_summary(server, shape.table, True))
    result.changed = Measured(f"Tidemark incremental, {changed:,} rows changed (1%, uniform)", out["seconds"],
                              changed, rss)
    log(f"{shape.name}: incremental after {changed:,} changed rows: {out['seconds']:.2f} s")
    out, rss = tidemark(conn, stream, home, "incremental")
    result.noop = Measured("Tidemark incremental, nothing changed", out["seconds"], out["rows_read"], rss)
    result.noop_committed = out["snapshot_id"] is not None
    log(f"{shape.name}: incremental with nothing changed: {out['seconds']:.2f} s, read {out['rows_read']} rows, "
        f"{'COMMITTED a snapshot' if result.noop_committed else 'committed nothing'}")


def pg_shape(shape: Shape, rows: int, repeats: int, backends: list[str], python: Path | None) -> ShapeResult:
    server = Server()
    pgtable.ensure_cache(server, rows, log, shape)
    pgtable.fresh_copy(server, shape)
    conn = {"source": "postgres", "host": server.host, "port": server.port, "user": server.user,
            "database": RUN_DB}
    stream = f"public.{shape.table}"
    amount = shape.name in ("narrow", "wide")
    try:
        if pgtable.count_rows(server, shape.table) != rows:
            raise SystemExit(f"{shape.name}: the fresh copy does not hold BENCH_ROWS rows")
        result = measure(shape.name, shape.what, "PostgreSQL binary COPY → /dev/null", rows, repeats, conn, stream,
                         lambda: pgtable.copy_ceiling(server, shape.table),
                         lambda: pg_summary(server, shape.table, amount), amount)
        for backend in backends:
            assert python is not None
            url = f"postgresql+psycopg2://{server.user}@{server.host}:{server.port}/{RUN_DB}"
            measured = dlt_load(python, backend, url, shape.table, rows)
            if measured is None:
                result.dlt_failed.append(backend)
            else:
                result.dlt[backend] = measured
        if amount:
            changed_then_noop(result, server, shape, conn, stream)
    finally:
        pgtable.drop_copy(server)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(WORK / f"tidemark-{shape.name}", ignore_errors=True)
    return result


def mysql_shape(rows: int, repeats: int, backends: list[str], python: Path | None) -> ShapeResult:
    server = mytable.MyServer()
    mytable.ensure(server, rows, log)
    conn = {"source": "mysql", "host": server.host, "port": server.port, "user": server.user,
            "database": mytable.DATABASE}
    try:
        result = measure("mysql", "MariaDB, the wide 11-column shape", "mysql", rows, repeats, conn,
                         f"{mytable.DATABASE}.{MYSQL_TABLE}", lambda: mytable.ceiling(server),
                         lambda: mytable.summary(server), False)
        result.ceiling.name = "mariadb --quick → /dev/null (ceiling)"
        result.reader_floor = connectorx_floor(server, rows, repeats)
        for backend in backends:
            assert python is not None
            url = f"mysql+pymysql://{server.user}@{server.host}:{server.port}/{mytable.DATABASE}"
            cx = f"mysql://{server.user}:@{server.host}:{server.port}/{mytable.DATABASE}"
            measured = dlt_load(python, backend, url, MYSQL_TABLE, rows, cx if backend == "connectorx" else None)
            if measured is None:
                result.dlt_failed.append(backend)
            else:
                result.dlt[backend] = measured
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(WORK / "tidemark-mysql", ignore_errors=True)
    return result


def connectorx_floor(server: mytable.MyServer, rows: int, repeats: int) -> Measured:
    """connectorx alone, native types, nothing written: the floor of a load through it (best of ``repeats``)."""
    args = {"url": f"mysql://{server.user}:@{server.host}:{server.port}/{mytable.DATABASE}", "table": MYSQL_TABLE}
    runs = []
    for attempt in range(repeats):
        out, rss = run_child([sys.executable, str(ROOT / "bench" / "cx_read.py"), json.dumps(args)])
        if out["rows_read"] != rows:
            raise SystemExit(f"connectorx read {out['rows_read']} rows, not {rows}")
        runs.append(Measured("connectorx alone, native types, nothing written (floor)", out["seconds"], rows, rss))
        log(f"mysql: connectorx read alone {attempt + 1}: {out['seconds']:.2f} s")
    return min(runs, key=lambda m: m.seconds)


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "5000000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    names = [s for s in os.environ.get("BENCH_SHAPES", ",".join(ALL_SHAPES)).split(",") if s]
    unknown = [s for s in names if s not in ALL_SHAPES]
    if unknown:
        raise SystemExit(f"unknown BENCH_SHAPES {unknown}; known: {','.join(ALL_SHAPES)}")
    backends = [b for b in os.environ.get("BENCH_DLT", "connectorx").split(",") if b]
    WORK.mkdir(exist_ok=True)
    (WORK / ".gitignore").write_text("*\n")
    python = dlt_python() if backends else None
    results: list[ShapeResult] = []
    for name in names:
        log(f"== {name} ==")
        if name == "mysql":
            results.append(mysql_shape(rows, repeats, backends, python))
        else:
            results.append(pg_shape(PG_SHAPES[name], rows, repeats, backends, python))

    print()
    for r in results:
        print(f"{r.shape} ({'MariaDB' if r.source == 'mysql' else 'PostgreSQL'}): {r.what}")
        for m in [r.ceiling, r.full, r.first_incremental, *r.dlt.values(),
                  *(m for m in (r.read_alone, r.reader_floor, r.changed, r.noop) if m is not None)]:
            rss = f"{m.rss_mb:.0f} MB" if m.rss_mb is not None else "-"
            print(f"  {m.name:58} {m.seconds:9.2f} s {m.rows_per_s:11,.0f} rows/s {rss:>8}")
        dlt = f"{r.dlt_ratio:.2f}" if r.dlt_ratio is not None else "-"
        if r.dlt_failed:
            dlt += f" (dlt failed with {', '.join(r.dlt_failed)})"
        print(f"  Full Refresh / ceiling = {r.ceiling_ratio:.2f} (≥ {CEILING_TARGET}), / dlt best = {dlt} "
              f"(≥ {DLT_TARGET}), first incremental run / Full Refresh time = {r.first_run_ratio:.2f}, "
              f"peak RSS {r.peak_rss_mb:.0f} MB (≤ {RSS_TARGET_MB})")
        if r.changed is not None:
            print(f"  incremental 1% uniform / Full Refresh time = {r.changed.seconds / r.full.seconds:.3f} "
                  f"(≤ {CHANGED_TARGET}); nothing changed → "
                  f"{'a snapshot (miss)' if r.noop_committed else 'no commit'}")
    if os.environ.get("BENCH_DOCS", "1") != "0":
        path = report.write(ROOT, rows, results, python)
        print(f"wrote {path.relative_to(ROOT)}")
    print(bench_line(rows, results))


def bench_line(rows: int, results: list[ShapeResult]) -> str:
    pg = [r for r in results if r.source != "mysql"] or results
    head = next((r for r in pg if r.shape == "narrow"), pg[0])
    worst = min(pg, key=lambda r: r.ceiling_ratio)
    dlt = [r.dlt_ratio for r in pg if r.dlt_ratio is not None]
    mysql = next((r for r in results if r.source == "mysql"), None)
    changed = next((r for r in pg if r.changed is not None), None)
    moved = changed.changed if changed is not None else None
    parts = {
        "rows": rows, "shapes": ",".join(r.shape for r in results),
        "ceiling_rows_per_s": f"{head.ceiling.rows_per_s:.0f}",
        "full_refresh_rows_per_s": f"{head.full.rows_per_s:.0f}",
        "ratio": f"{head.ceiling_ratio:.3f}", "peak_rss_mb": f"{max(r.peak_rss_mb for r in results):.0f}",
        "full_refresh_s": f"{head.full.seconds:.2f}",
        "incremental_s": f"{moved.seconds:.2f}" if moved else "-",
        "changed_share": f"{moved.seconds / changed.full.seconds:.3f}" if changed and moved else "-",
        "noop_commits": str(changed.noop_committed).lower() if changed else "-",
        "first_run_ratio_max": f"{max(r.first_run_ratio for r in results):.2f}",
        "worst_shape": worst.shape, "worst_ceiling_ratio": f"{worst.ceiling_ratio:.3f}",
        "worst_dlt_ratio": f"{min(dlt):.3f}" if dlt else "-",
        "mysql_dlt_ratio": f"{mysql.dlt_ratio:.3f}" if mysql and mysql.dlt_ratio is not None else "-",
        "mysql_ceiling_ratio": f"{mysql.ceiling_ratio:.3f}" if mysql else "-",
    }
    return "BENCH " + " ".join(f"{k}={v}" for k, v in parts.items())


if __name__ == "__main__":
    main()
