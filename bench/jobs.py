"""`make bench-jobs`: jobs-svc's read API and Jobs page over a large read model on PostgreSQL.

It fills a fresh database with ``BENCH_JOBS_RUNS`` runs (default 1,000,000) spread over
``BENCH_JOBS_PIPELINES`` pipelines (default 1,000) and the last 90 days, in every status (one
upcoming run per pipeline), written straight into jobs-svc's tables the way its projection writes
them (replaying a million runs' events through Kafka would measure the broker, not the reads).
Then it starts ``tidemark-jobs-svc serve`` and times, over HTTP with keep-alive, ``BENCH_JOBS_REQUESTS``
(default 200) answers of each of:

- ``GET /v1/runs?status=failed``
- ``GET /v1/runs?status=failed&trigger=schedule&limit=50``, page 50 (its cursor found by walking there)
- ``GET /jobs`` and ``GET /jobs?section=failed`` (signed in)

The last line printed: ``BENCH runs=N api_p95_ms=A page_p95_ms=B`` (A: the slower API p95, B: the
slower page p95). ``BENCH_JOBS_KEEP=1`` keeps the database and prints its URL; ``BENCH_JOBS_URL=<it>``
measures it again without filling.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from tidemark.db import create_engine
from tidemark.db.migrate import upgrade
from tidemark.settings import DatabaseSettings
from tidemark_testing.ports import free_port
from tidemark_testing.postgres import admin_dsn, create_database, drop_database

TOKEN = "bench-token"  # noqa: S105 - the throwaway server's own token
DEEP = 50


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def fill(url: str, runs: int, pipelines: int) -> None:
    past = runs - pipelines  # and one upcoming run per pipeline
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(FILL, {"n": past, "p": pipelines})
        conn.execute(UPCOMING, {"p": pipelines})
        conn.execute(TOTALS)
        conn.execute(HEALTH)
        conn.execute("VACUUM ANALYZE")


# Runs g = 1..n, oldest first, evenly over 90 days; the newest are still running or queued.
FILL = """
INSERT INTO run_views (run_id, pipeline_id, pipeline_name, connection_id, "trigger", status, attempt, retry_of,
    scheduled_for, queued_at, requested_at, started_at, finished_at, rows_read, rows_written, bytes_written,
    worker_ref, error, error_kind, error_stream, streams, log_records, logs_dropped, updated_at, list_order)
SELECT md5('r' || g)::uuid, md5('p' || (g %% %(p)s))::uuid, 'pipeline-' || lpad((g %% %(p)s)::text, 4, '0'),
    md5('c' || (g %% 50))::uuid, trig, status, 1, NULL,
    CASE WHEN trig = 'schedule' THEN at END, at, at + interval '1 second',
    CASE WHEN status <> 'queued' THEN at + interval '5 seconds' END,
    CASE WHEN status NOT IN ('queued', 'running') THEN at + (5 + g %% 600) * interval '1 second' END,
    g %% 10000, g %% 10000, (g %% 10000) * 120, (10000 + g %% 50000)::text,
    CASE WHEN status = 'failed' THEN 'source unreachable: connection refused' END,
    CASE WHEN status = 'failed' THEN 'transient' END, NULL, '[]'::jsonb, 0, 0,
    at, (extract(epoch FROM at) * 1000000)::bigint
FROM (
    SELECT g, now() - (%(n)s - g) * (interval '90 days' / %(n)s) AS at,
        (ARRAY['schedule','schedule','schedule','schedule','schedule','schedule','manual','manual','dependency',
               'retry'])[1 + g %% 10] AS trig,
        CASE WHEN g > %(n)s - 40 THEN 'queued' WHEN g > %(n)s - 200 THEN 'running'
             WHEN (g::bigint * 7919) %% 1000 < 700 THEN 'succeeded' WHEN (g::bigint * 7919) %% 1000 < 800 THEN 'failed'
             WHEN (g::bigint * 7919) %% 1000 < 830 THEN 'partially_succeeded' ELSE 'cancelled' END AS status
    FROM generate_series(1, %(n)s) AS g
) AS runs
"""

UPCOMING = """
INSERT INTO run_views (run_id, pipeline_id, pipeline_name, "trigger", status, attempt, scheduled_for, rows_read,
    rows_written, bytes_written, streams, log_records, logs_dropped, updated_at, list_order)
SELECT md5('u' || p)::uuid, md5('p' || p)::uuid, 'pipeline-' || lpad(p::text, 4, '0'), 'schedule', 'scheduled', 1,
    at, 0, 0, 0, '[]'::jsonb, 0, 0, now(), -(extract(epoch FROM at) * 1000000)::bigint
FROM (SELECT p, now() + (p %% 24 + 1) * interval '1 hour' AS at FROM generate_series(0, %(p)s - 1) AS p) AS ticks
"""

TOTALS = """
UPDATE run_totals t SET runs = c.n
FROM (SELECT status, COALESCE("trigger", '') AS tr, count(*) AS n FROM run_views GROUP BY 1, 2) c
WHERE t.status = c.status AND t."trigger" = c.tr
"""

HEALTH = """
INSERT INTO pipeline_health (pipeline_id, last_status, last_finished_at, first_finished_at, last_success_at)
SELECT DISTINCT ON (pipeline_id) pipeline_id, status, finished_at,
    min(finished_at) OVER (PARTITION BY pipeline_id),
    max(CASE WHEN status = 'succeeded' THEN finished_at END) OVER (PARTITION BY pipeline_id)
FROM run_views WHERE finished_at IS NOT NULL ORDER BY pipeline_id, finished_at DESC
"""


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def timed(client: httpx.Client, requests: int, call: Callable[[], httpx.Response]) -> float:
    for _ in range(5):  # warm the connection pool and PostgreSQL's caches
        call().raise_for_status()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call().raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return p95(samples)


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    command = shutil.which("tidemark-jobs-svc") or str(Path(sys.executable).parent / "tidemark-jobs-svc")
    env = {**os.environ, "TIDEMARK_JOBS__DATABASE__URL": url, "TIDEMARK_JOBS__BUS": "memory",
           "TIDEMARK_JOBS__AUTH__TOKENS": f'["{TOKEN}"]', "TIDEMARK_JOBS__LOG_LEVEL": "WARNING"}
    return subprocess.Popen([command, "serve", "--port", str(port)], env=env)


def measure(base: str, requests: int) -> tuple[float, float]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("jobs-svc did not start")
            time.sleep(0.2)
        failed = timed(client, requests, lambda: client.get("/v1/runs", params={"status": "failed"}))
        deep_params = {"status": "failed", "trigger": "schedule", "limit": 50}
        cursor = client.get("/v1/runs", params=deep_params).json()["next_cursor"]
        for _ in range(DEEP - 2):
            if cursor is None:
                raise RuntimeError(f"fewer than {DEEP} pages of failed scheduled runs: raise BENCH_JOBS_RUNS")
            cursor = client.get("/v1/runs", params={**deep_params, "cursor": cursor}).json()["next_cursor"]
        deep = timed(client, requests, lambda: client.get("/v1/runs", params={**deep_params, "cursor": cursor}))
        client.cookies.set("tidemark_token", TOKEN)
        page = timed(client, requests, lambda: client.get("/jobs"))
        failed_page = timed(client, requests, lambda: client.get("/jobs", params={"section": "failed"}))
    print(f"p95 ms: GET /v1/runs?status=failed {failed:.1f}; page {DEEP} of status=failed&trigger=schedule "
          f"{deep:.1f}; GET /jobs {page:.1f}; GET /jobs?section=failed {failed_page:.1f}")
    return max(failed, deep), max(page, failed_page)


def main() -> None:
    runs, pipelines = env_int("BENCH_JOBS_RUNS", 1_000_000), env_int("BENCH_JOBS_PIPELINES", 1000)
    requests = env_int("BENCH_JOBS_REQUESTS", 200)
    kept = os.environ.get("BENCH_JOBS_URL")  # a database an earlier BENCH_JOBS_KEEP=1 run filled
    if kept:
        with psycopg.connect(libpq(kept)) as conn:
            runs = int(conn.execute("SELECT count(*) FROM run_views").fetchone()[0])  # type: ignore[index]
        api, page = run_server(kept, requests)
    else:
        with admin_dsn() as admin:
            url = create_database(admin, "tidemark_bench_jobs")
            try:
                asyncio.run(_migrate(url))
                started = time.perf_counter()
                fill(url, runs, pipelines)
                print(f"filled {runs} runs over {pipelines} pipelines in {time.perf_counter() - started:.0f} s")
                api, page = run_server(url, requests)
            finally:
                if os.environ.get("BENCH_JOBS_KEEP") == "1":
                    print(f"kept: BENCH_JOBS_URL={url}")
                else:
                    drop_database(admin, url)
    print(f"BENCH runs={runs} api_p95_ms={api:.1f} page_p95_ms={page:.1f}")


def run_server(url: str, requests: int) -> tuple[float, float]:
    port = free_port()
    server = serve(url, port)
    try:
        return measure(f"http://127.0.0.1:{port}", requests)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _migrate(url: str) -> None:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await upgrade(engine, "tidemark_jobs:migrations")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
