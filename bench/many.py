"""`make bench-many`: one pipeline of many small tables, trigger → succeeded, on the embedded platform.

Creates ``BENCH_MANY_TABLES`` (500) PostgreSQL tables of ``BENCH_MANY_ROWS`` (1,000) rows each in a fresh
database (dropped at the end), starts ``tidemark up`` (every service in one process, SQLite databases and
catalog, the local broker, the local launcher's fork server) in a temporary home, creates one connection
and one Full Refresh pipeline of every table through the API, triggers it and times it as a user sees it:
from just before ``POST /v1/pipelines/{id}/runs`` to the first ``GET /v1/runs/{id}`` that answers
``succeeded``. Then every table is read back with pyiceberg from the platform's own catalog: it must
hold exactly its rows (count and distinct ids) in exactly one snapshot (one commit per table).

It does this twice in the same sitting, each on a platform of its own: with the worker's
``TIDEMARK_INGEST__STREAM_CONCURRENCY`` at ``BENCH_MANY_CONCURRENCY`` (the setting's default unless set),
then at 1 (one stream after another, as before the setting existed; ``BENCH_MANY_SEQUENTIAL=0`` skips it).
Also reported: how long creating the pipeline took (the API discovers the source once to validate it),
the worker's part (the run marked running → its ending recorded), and the peak resident
memory of the largest worker process (sampled every 0.2 s; a forked worker's resident pages include
those it shares with the fork server).

The last line: ``BENCH tables=N rows_per_table=R seconds=S tables_per_s=T concurrency=C
seconds_sequential=S1 target_met=yes|no`` (target: ``seconds`` ≤ 60 for 500 x 1,000).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from platform_up import Platform, env_int, start  # noqa: E402

from tidemark_testing.postgres import admin_dsn, create_database, drop_database  # noqa: E402

TARGET_S = 60.0
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(f"[bench-many] {message}", flush=True)


def load_text() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def make_tables(url: str, tables: int, rows: int) -> list[str]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    names = [f"t_{i:04d}" for i in range(tables)]
    with psycopg.connect(dsn, autocommit=False) as conn:
        for name in names:
            conn.execute(f"""
                CREATE TABLE {name} (
                    id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12, 2),
                    updated_at timestamptz NOT NULL, active boolean NOT NULL, note text)""")
            conn.execute(f"""
                INSERT INTO {name}
                SELECT g, 'customer ' || g, (g * 7 %% 10000) / 100.0, now() - g * interval '1 minute',
                       g %% 3 = 0, CASE WHEN g %% 2 = 0 THEN NULL ELSE md5(g::text) END
                FROM generate_series(1, %s) g""", (rows,))  # noqa: S608 - our own table names
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return [f"public.{n}" for n in names]


@dataclass
class WorkerMemory:
    """Peak resident memory of the largest python process started under ``pid`` after the start (the
    run's worker; a forked one counts the pages it shares with the fork server too)."""

    pid: int
    peak: int = 0
    _before: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _descendants(self) -> list[int]:
        tree: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                tree.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
        found, todo = [], list(tree.get(self.pid, []))
        while todo:
            p = todo.pop()
            found.append(p)
            todo.extend(tree.get(p, []))
        return found

    def run(self) -> None:
        while not self._stop.wait(0.2):
            for p in set(self._descendants()) - self._before:
                try:
                    if b"python" not in Path(f"/proc/{p}/cmdline").read_bytes():
                        continue
                    rss = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
                except (OSError, IndexError, ValueError):
                    continue
                self.peak = max(self.peak, rss)

    def __enter__(self) -> WorkerMemory:
        self._before = set(self._descendants())  # the platform's own (the fork server): not the run's worker
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


@dataclass
class Result:
    concurrency: int | None
    seconds: float
    create_seconds: float
    worker_seconds: float
    peak_worker_mb: float
    load1: float


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    answer = client.request(method, path, **kwargs)
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
    return answer.json() if answer.content else None


def check_tables(platform: Platform, streams: list[str], rows: int) -> None:
    """Every table holds exactly its rows, in one snapshot: read with pyiceberg from the catalog."""
    from pyiceberg.catalog.sql import SqlCatalog

    from tidemark.lakehouse.naming import table_identifier

    catalog = SqlCatalog("tidemark", uri=f"sqlite:///{platform.home / 'catalog.db'}",
                         warehouse=f"file://{platform.home / 'warehouse'}")
    wrong = []
    for stream in streams:
        table = catalog.load_table(table_identifier("many", "", stream))
        ids = table.scan(selected_fields=("id",)).to_arrow().column("id")
        snapshots = len(table.snapshots())
        if len(ids) != rows or len(set(ids.to_pylist())) != rows or snapshots != 1:
            wrong.append(f"{stream}: {len(ids)} rows, {snapshots} snapshots")
    catalog.engine.dispose()
    if wrong:
        raise RuntimeError(f"{len(wrong)} tables are wrong: {wrong[:10]}")
    log(f"every one of the {len(streams)} tables holds its {rows} rows (distinct ids) in one snapshot")


def worker_seconds(view: dict[str, Any]) -> float:
    """The run marked running → its ending recorded (the worker's own part, by its clock)."""
    from datetime import datetime

    return (datetime.fromisoformat(view["finished_at"]) - datetime.fromisoformat(view["started_at"])).total_seconds()


def trigger(client: httpx.Client, pipeline_id: str) -> tuple[dict[str, Any], float]:
    """Trigger a run and wait for jobs-svc to show it ended: (its view, trigger → ended in seconds)."""
    started = time.monotonic()
    run_id = call(client, "POST", f"/v1/pipelines/{pipeline_id}/runs")["run_id"]
    while True:
        answer = client.get(f"/v1/runs/{run_id}")
        if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
            return answer.json(), time.monotonic() - started
        if time.monotonic() - started > 1800:
            raise RuntimeError(f"run {run_id} did not end within 30 minutes")
        time.sleep(0.25)


def phases(client: httpx.Client, view: dict[str, Any], started: float) -> str:
    """trigger → admitted (run.requested written) → ingest-svc has it → running → finished, by the
    services' own records (clocks of one machine)."""
    from datetime import datetime

    def at(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    worker = call(client, "GET", f"/v1/workers/{view['run_id']}")
    marks = [("admit", at(view["requested_at"])), ("deliver", at(worker["requested_at"])),
             ("start", at(view["started_at"])), ("load", at(view["finished_at"]))]
    out, last = [], started
    for name, when in marks:
        out.append(f"{name}={when - last:.2f}")
        last = when
    return " ".join(out)


def one(url: str, streams: list[str], rows: int, concurrency: int | None) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_")}
    if concurrency is not None:
        env["TIDEMARK_INGEST__STREAM_CONCURRENCY"] = str(concurrency)
    os.environ.clear()
    os.environ.update(env)
    platform = start()
    shown = "default" if concurrency is None else str(concurrency)
    try:
        client = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.token}"},
                              timeout=300)
        db = make_url(url)
        made = call(client, "POST", "/v1/connections", json={"name": "many", "type": "postgres", "config": {
            "host": db.host or "127.0.0.1", "port": db.port or 5432, "database": db.database,
            "user": db.username or "postgres", "password": db.password or ""}})
        # A warm-up run of one table first: the first run after the platform starts also starts the
        # local launcher's fork server (its imports), which is not the many-tables path being measured.
        warm = call(client, "POST", "/v1/pipelines", json={
            "name": "warm-up", "connection_id": made["id"], "streams": [{"name": streams[0]}],
            "destination": {"kind": "iceberg", "namespace": "warm_up"}})
        warm_view, warm_s = trigger(client, warm["id"])
        log(f"concurrency {shown}: warm-up run of one table {warm_view['status']} in {warm_s:.2f} s")
        began = time.monotonic()
        created = call(client, "POST", "/v1/pipelines", json={
            "name": "many", "connection_id": made["id"],
            "streams": [{"name": s, "sync_mode": "full_refresh"} for s in streams],
            "destination": {"kind": "iceberg", "namespace": "many"}})
        create_seconds = time.monotonic() - began
        log(f"concurrency {shown}: pipeline of {len(streams)} streams created in {create_seconds:.2f} s")
        with WorkerMemory(platform.process.pid) as memory:
            started_wall = time.time()
            view, seconds = trigger(client, created["id"])
            run_id = view["run_id"]
        load1 = os.getloadavg()[0]
        if view["status"] != "succeeded":
            raise RuntimeError(f"run {run_id} ended {view['status']}: {view.get('error')}")
        worker = worker_seconds(view)
        log(f"concurrency {shown}: where the time went (s): {phases(client, view, started_wall)}")
        log(f"concurrency {shown}: trigger → succeeded {seconds:.2f} s ({len(streams) / seconds:.1f} tables/s); "
            f"running → finished {worker:.2f} s; "
            f"largest worker process peak RSS {memory.peak / 2**20:.0f} MB; load {load_text()}")
        client.close()
        check_tables(platform, streams, rows)
        return Result(concurrency, seconds, create_seconds, worker, memory.peak / 2**20, load1)
    finally:
        platform.stop()


def main() -> None:
    tables = env_int("BENCH_MANY_TABLES", 500)
    rows = env_int("BENCH_MANY_ROWS", 1000)
    raw = os.environ.get("BENCH_MANY_CONCURRENCY", "").strip()
    concurrency = int(raw) if raw else None
    sequential = env_int("BENCH_MANY_SEQUENTIAL", 1) != 0
    if concurrency is None:
        from tidemark_ingest.settings import IngestSettings

        default = IngestSettings.model_fields["stream_concurrency"].default
    else:
        default = concurrency
    log(f"load average before: {load_text()}")
    with admin_dsn() as admin:
        url = create_database(admin, prefix="tidemark_bench_many")
        try:
            began = time.monotonic()
            streams = make_tables(url, tables, rows)
            log(f"{tables} tables x {rows} rows created in {time.monotonic() - began:.1f} s")
            result = one(url, streams, rows, concurrency)
            serial = one(url, streams, rows, 1) if sequential and default != 1 else None
        finally:
            drop_database(admin, url)
    log(f"load average after: {load_text()}")
    met = tables >= 500 and rows >= 1000 and result.seconds <= TARGET_S
    parts = [f"tables={tables}", f"rows_per_table={rows}", f"seconds={result.seconds:.2f}",
             f"tables_per_s={tables / result.seconds:.1f}", f"concurrency={default}",
             f"seconds_sequential={serial.seconds:.2f}" if serial else "seconds_sequential=none",
             f"create_pipeline_s={result.create_seconds:.2f}", f"running_s={result.worker_seconds:.2f}",
             f"peak_worker_rss_mb={result.peak_worker_mb:.0f}",
             f"load1={result.load1:.1f}", f"target_met={'yes' if met else 'no'}"]
    # The brief's fields first, then ours; target_met stays last.
    print("BENCH " + " ".join(parts), flush=True)


if __name__ == "__main__":
    main()
