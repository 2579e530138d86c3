"""`make bench-latency`: how long a small run takes, trigger → succeeded, on the embedded platform.

Starts ``tidemark up`` (the embedded platform of ``make run``: every service in one process, SQLite
databases, the local broker, the local launcher) in a temporary home on a free port, creates a
1,000-row PostgreSQL table in a fresh database (dropped at the end) and a Full Refresh pipeline of it,
and a second pipeline of the bundled sample shop's ``main.orders`` (SQLite, 1,000 rows). Then it
triggers runs one after the other and times each from the API, as a user sees it: from just before
``POST /v1/pipelines/{id}/runs`` (the orchestrator) to the first ``GET /v1/runs/{id}`` (jobs-svc, the
Jobs view) that answers ``succeeded``. After each run the table is read back (row count and distinct
ids, through pyiceberg from the platform's own catalog) and must hold the source's 1,000 rows.

Each run's time is split by the run's own timings (clocks of one machine):

- ``admit``: trigger → the run admitted (jobs-svc's ``requested_at``: ``run.requested`` written);
- ``deliver``: admitted → ingest-svc recorded it (``/v1/workers``: outbox relay, broker, consumer);
- ``queue``: recorded → the launcher starts the worker (ingest-svc's launch loop claims the run);
- ``launch``: the launcher starts it → the worker's code begins (process start, or fork, and imports;
  the worker logs it as ``startup_seconds`` in its ``worker up`` line);
- ``start``: the worker's code begins → the run marked ``running`` (settings, database, ``run.started``);
- ``open``: ``running`` → the stream begins (connection config from connector-svc, the source opened,
  schema, the table's state);
- ``load``: the stream's read, write and commit (``stream loaded``; they overlap);
- ``finish``: the stream committed → the run's ending recorded (``finished_at``);
- ``back``: recorded → jobs-svc shows it (outbox relay, broker, jobs-svc's projection, the poll).

Each run also reports the CPU seconds the platform spent on it (its process, the broker, the worker
fork server and its workers; not PostgreSQL's), which a loaded machine does not inflate the way it
stretches the wall clock.

Knobs: ``BENCH_LATENCY_RUNS`` (50, the PostgreSQL runs), ``BENCH_LATENCY_SQLITE_RUNS`` (20; 0 skips the
SQLite shape), ``BENCH_LATENCY_POLL_S`` (0.1, how often the bench asks jobs-svc; every request is work for the
platform, which shares the cores),
``BENCH_LATENCY_LOCAL_START`` (the local launcher's ``local_start``: ``forkserver``, the default, or
``process``, a new interpreter per run, to compare). The first run of
each shape is a warm-up, reported apart and not counted. The last line is machine-readable:
``BENCH runs=N p50_s=A p95_s=B max_s=C ...`` (the PostgreSQL shape's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.processes import free_port  # noqa: E402
from tidemark_testing.postgres import admin_dsn, create_database, drop_database  # noqa: E402

ROWS = 1000
TARGET_P50_S = 1.0
TARGET_P95_S = 2.0
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
PHASES = ("admit", "deliver", "queue", "launch", "start", "open", "load", "finish", "back")


def log(message: str) -> None:
    print(f"[bench-latency] {message}", flush=True)


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass
class Run:
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    polls: int = 0

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of its children it has reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in stat[11:15]) / CLOCK_TICKS


def platform_cpu(pid: int) -> dict[str, float]:
    """CPU seconds the platform has used, by part: ``services`` (its process: every service),
    ``workers`` (the worker fork server and the workers it reaped), ``broker`` (the local broker).
    PostgreSQL's own work and the bench's are not in it."""
    used = {"services": _cpu(pid), "workers": 0.0, "broker": 0.0}
    children = []
    # Per thread: the fork server is started from a thread of ingest-svc's, not the main one.
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        part = "broker" if b"tansu" in command else "workers" if b"forkserver" in command else "services"
        used[part] += _cpu(child)
    return used


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def make_table(url: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE bench_small (
                id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12, 2), updated_at timestamptz NOT NULL,
                active boolean NOT NULL, note text)""")
        conn.execute("""
            INSERT INTO bench_small
            SELECT g, 'customer ' || g, (g * 7 %% 10000) / 100.0, now() - g * interval '1 minute', g %% 3 = 0,
                   CASE WHEN g %% 2 = 0 THEN NULL ELSE md5(g::text) END
            FROM generate_series(1, %s) g""", (ROWS,))


class Platform:
    """``tidemark up`` in a temporary home, as ``make run`` starts it (without the demo)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "platform.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_")}
        env["TIDEMARK_API_TOKEN"] = "bench-latency-token"  # noqa: S105 - a throw-away platform's token
        start = os.environ.get("BENCH_LATENCY_LOCAL_START", "").strip()
        if start:  # `process`: a new interpreter per run, as before the fork server, for comparison
            env["TIDEMARK_INGEST__LOCAL_START"] = start
        tidemark = shutil.which("tidemark") or str(Path(sys.executable).with_name("tidemark"))
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [tidemark, "up", "--port", str(self.port), "--home", str(home / "tidemark"), "--log-format", "json"],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": "Bearer bench-latency-token"},
                                 timeout=60)

    def wait_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tidemark up exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the platform was not ready within {timeout:.0f}s; see {self.log_path}")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pipeline(platform: Platform, name: str, connection: dict[str, Any], stream: str) -> str:
    made = platform.call("POST", "/v1/connections", json={"name": name, **connection})
    created = platform.call("POST", "/v1/pipelines", json={
        "name": name, "connection_id": made["id"],
        "streams": [{"name": stream, "sync_mode": "full_refresh"}],
        "destination": {"kind": "iceberg", "namespace": name.replace("-", "_")},
    })
    return str(created["id"])


def one_run(platform: Platform, pipeline_id: str, poll: float) -> tuple[Run, dict[str, Any]]:
    cpu_before = platform_cpu(platform.proc.pid)
    started = time.time()
    run_id = platform.call("POST", f"/v1/pipelines/{pipeline_id}/runs")["run_id"]
    deadline = time.monotonic() + 120
    polls = 0
    while True:
        polls += 1
        answer = platform.http.get(f"/v1/runs/{run_id}")
        if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
            seen = time.time()
            view = answer.json()
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} did not end within 120 s")
        time.sleep(poll)
    cpu_after = platform_cpu(platform.proc.pid)  # before the bench's own questions below
    cpu = {part: cpu_after[part] - cpu_before[part] for part in cpu_after}
    if view["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} ended {view['status']}: {view.get('error')}")
    return Run(seen - started, phases(platform, view, started, seen), cpu, polls), view


def phases(platform: Platform, view: dict[str, Any], started: float, seen: float) -> dict[str, float]:
    """The run's own timings, as the services and the worker recorded them (see the module's doc)."""
    run_id = view["run_id"]
    worker = platform.call("GET", f"/v1/workers/{run_id}")
    logs = platform.call("GET", f"/v1/runs/{run_id}/logs", params={"limit": 200})["items"]
    by_message = {r["message"]: r for r in logs}
    admitted = _at(view["requested_at"])
    received = _at(worker["requested_at"])
    running = _at(view["started_at"])
    finished = _at(view["finished_at"])
    up = by_message.get("worker up", {}).get("fields", {})
    launched = float(up.get("launched_at") or received)
    began = launched + float(up.get("startup_seconds") or 0.0)
    loading = _at(by_message["loading stream"]["at"]) if "loading stream" in by_message else running
    loaded = _at(by_message["stream loaded"]["at"]) if "stream loaded" in by_message else finished
    return {
        "admit": admitted - started,
        "deliver": received - admitted,
        "queue": launched - received,
        "launch": began - launched,
        "start": running - began,
        "open": loading - running,
        "load": loaded - loading,
        "finish": finished - loaded,
        "back": seen - finished,
    }


def check_rows(home: Path, namespace: str, table: str) -> None:
    """The table holds the source's rows: count and distinct ids, read with pyiceberg from the catalog."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("tidemark", uri=f"sqlite:///{home / 'tidemark' / 'catalog.db'}",
                         warehouse=f"file://{home / 'tidemark' / 'warehouse'}")
    data = catalog.load_table(f"{namespace}.{table}").scan().to_arrow()
    ids = data.column("id").to_pylist()
    if data.num_rows != ROWS or len(set(ids)) != ROWS:
        raise RuntimeError(f"{namespace}.{table}: {data.num_rows} rows, {len(set(ids))} distinct ids; "
                           f"expected {ROWS}")


def poll_cost(platform: Platform, run_id: str, requests: int = 200) -> float:
    """CPU seconds the platform's process spends answering one ``GET /v1/runs/{id}`` (the bench's poll)."""
    before = platform_cpu(platform.proc.pid)["services"]
    for _ in range(requests):
        platform.http.get(f"/v1/runs/{run_id}")
    return (platform_cpu(platform.proc.pid)["services"] - before) / requests


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def measure(platform: Platform, home: Path, name: str, pipeline_id: str, runs: int, poll: float,
            namespace: str, table: str) -> list[Run]:
    warm, view = one_run(platform, pipeline_id, poll)
    cost = poll_cost(platform, view["run_id"])
    log(f"{name}: one poll of the run costs the platform {cost * 1000:.1f} ms of CPU")
    check_rows(home, namespace, table)
    log(f"{name}: warm-up run {warm.seconds:.3f} s ({_phases_text(warm.phases)})")
    results = []
    for i in range(runs):
        run, _ = one_run(platform, pipeline_id, poll)
        check_rows(home, namespace, table)
        results.append(run)
        log(f"{name}: run {i + 1}/{runs} {run.seconds:.3f} s, cpu {run.cpu_seconds:.2f} s "
            f"({' + '.join(f'{k} {v:.2f}' for k, v in run.cpu.items())}) ({_phases_text(run.phases)})")
    return results


def _phases_text(values: dict[str, float]) -> str:
    return " ".join(f"{k}={values[k]:.3f}" for k in PHASES)


def summary(name: str, results: list[Run]) -> dict[str, float]:
    seconds = [r.seconds for r in results]
    out = {"runs": len(results), "p50_s": statistics.median(seconds), "p95_s": percentile(seconds, 0.95),
           "max_s": max(seconds), "min_s": min(seconds),
           "cpu_p50_s": statistics.median(r.cpu_seconds for r in results),
           **{f"cpu_{part}_p50_s": statistics.median(r.cpu.get(part, 0.0) for r in results)
              for part in ("services", "workers", "broker")}}
    polls = statistics.median(r.polls for r in results)
    log(f"{name}: the bench polled a run {polls:.0f} times (median)")
    log(f"{name}: {len(results)} runs, trigger → succeeded p50 {out['p50_s']:.3f} s, p95 {out['p95_s']:.3f} s, "
        f"max {out['max_s']:.3f} s, min {out['min_s']:.3f} s; platform CPU per run p50 {out['cpu_p50_s']:.2f} s "
        f"(services {out['cpu_services_p50_s']:.2f}, workers {out['cpu_workers_p50_s']:.2f}, "
        f"broker {out['cpu_broker_p50_s']:.2f})")
    log(f"{name}: median of each phase (s): " + " ".join(
        f"{k}={statistics.median(r.phases[k] for r in results):.3f}" for k in PHASES))
    return out


def main() -> None:
    runs = int(env_number("BENCH_LATENCY_RUNS", 50))
    sqlite_runs = int(env_number("BENCH_LATENCY_SQLITE_RUNS", 20))
    poll = env_number("BENCH_LATENCY_POLL_S", 0.1)
    log(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with admin_dsn() as admin, tempfile.TemporaryDirectory(prefix="tidemark-bench-latency-") as tmp:
        home = Path(tmp)
        url = create_database(admin, prefix="tidemark_bench_latency")
        platform = Platform(home)
        try:
            make_table(url)
            log(f"platform ready in {platform.wait_ready():.1f} s on {platform.url}; log {platform.log_path}")
            db = make_url(url)
            pg = pipeline(platform, "latency-pg", {"type": "postgres", "config": {
                "host": db.host or "127.0.0.1", "port": db.port or 5432, "database": db.database,
                "user": db.username or "postgres", "password": db.password or ""}}, "public.bench_small")
            pg_results = measure(platform, home, "postgres", pg, runs, poll, "latency_pg", "bench_small")
            pg_summary = summary("postgres", pg_results)
            sqlite_summary = None
            if sqlite_runs > 0:
                lite = pipeline(platform, "latency-sqlite", {"type": "sqlite", "config": {"path": "sample:shop"}},
                                "main.orders")
                lite_results = measure(platform, home, "sqlite", lite, sqlite_runs, poll, "latency_sqlite", "orders")
                sqlite_summary = summary("sqlite", lite_results)
        finally:
            platform.stop()
            drop_database(admin, url)
    load = os.getloadavg()
    log(f"load average after: {' / '.join(f'{x:.1f}' for x in load)}")
    met = pg_summary["p50_s"] <= TARGET_P50_S and pg_summary["p95_s"] <= TARGET_P95_S
    parts = [f"runs={pg_summary['runs']}", f"p50_s={pg_summary['p50_s']:.3f}", f"p95_s={pg_summary['p95_s']:.3f}",
             f"max_s={pg_summary['max_s']:.3f}", f"cpu_p50_s={pg_summary['cpu_p50_s']:.3f}",
             f"worker_cpu_p50_s={pg_summary['cpu_workers_p50_s']:.3f}"]
    parts += [f"{k}_p50_s={statistics.median(r.phases[k] for r in pg_results):.3f}" for k in PHASES]
    if sqlite_summary is not None:
        parts += [f"sqlite_p50_s={sqlite_summary['p50_s']:.3f}", f"sqlite_p95_s={sqlite_summary['p95_s']:.3f}"]
    parts += [f"load1={load[0]:.1f}", f"target_met={'yes' if met else 'no'}"]
    print("BENCH " + " ".join(parts), flush=True)


if __name__ == "__main__":
    main()
