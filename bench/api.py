"""`make bench-api`: many concurrent API clients against the embedded platform (`tidemark up`).

``BENCH_API_CLIENTS`` clients (default 200), each its own httpx async client (its own connection),
send requests back to back for ``BENCH_API_SECONDS`` (default 60): a mix of reads and writes over
the whole API, weighted like a busy team's day (mostly reads):

- reads: list and get pipelines, list and get connections, list runs (the Jobs view's API), get a run;
- writes: create a connection, create a pipeline on it (checked against the connection's catalog), and
  trigger a run of a pipeline this client created (the runs really execute on the local launcher).

Every answer's latency and status are recorded. A 5xx is an error (the target is zero); an expected
4xx (409: the pipeline already has a run waiting) is not. Transport failures (timeouts, resets) are
counted apart. The last line: ``BENCH clients=N requests=R p50_ms=.. p99_ms=A errors_5xx=E ...``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from platform_up import Memory, Platform, env_int, start

# (operation, weight): reads dominate, as on a real installation.
MIX = [("list_pipelines", 14), ("get_pipeline", 14), ("list_connections", 10), ("get_connection", 10),
       ("list_runs", 20), ("get_run", 12), ("create_connection", 6), ("create_pipeline", 6), ("trigger_run", 8)]
STREAMS = ["main.customers"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    by_op: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    samples_5xx: list[str] = field(default_factory=list)


@dataclass
class Shared:
    pipelines: list[str] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


async def call(client: httpx.AsyncClient, stats: Stats, op: str, method: str, path: str,
               body: Any = None) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        stats.transport_errors[type(exc).__name__] += 1
        return None
    stats.latencies.setdefault(op, []).append(time.perf_counter() - started)
    stats.statuses[response.status_code] += 1
    stats.by_op[(op, response.status_code)] += 1
    if response.status_code >= 500 and len(stats.samples_5xx) < 20:
        stats.samples_5xx.append(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
    return response


async def client_loop(platform: Platform, deadline: float, stats: Stats, shared: Shared, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a workload mix, not a secret
    ops, weights = zip(*MIX, strict=True)
    mine: list[str] = []  # pipelines this client created: it triggers only those
    headers = {"Authorization": f"Bearer {platform.token}"}
    async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=60) as client:
        while time.monotonic() < deadline:
            op = rng.choices(ops, weights)[0]
            if op == "list_pipelines":
                await call(client, stats, op, "GET", "/v1/pipelines?limit=50")
            elif op == "get_pipeline" and shared.pipelines:
                await call(client, stats, op, "GET", f"/v1/pipelines/{rng.choice(shared.pipelines)}")
            elif op == "list_connections":
                await call(client, stats, op, "GET", "/v1/connections?limit=50")
            elif op == "get_connection" and shared.connections:
                await call(client, stats, op, "GET", f"/v1/connections/{rng.choice(shared.connections)}")
            elif op == "list_runs":
                await call(client, stats, op, "GET", "/v1/runs?limit=50")
            elif op == "get_run" and shared.runs:
                await call(client, stats, op, "GET", f"/v1/runs/{rng.choice(shared.runs)}")
            elif op == "create_connection":
                r = await call(client, stats, op, "POST", "/v1/connections", {
                    "name": f"bench-{uuid.uuid4().hex[:12]}", "type": "sqlite", "config": {"path": "sample:shop"}})
                if r is not None and r.status_code == 201:
                    shared.connections.append(r.json()["id"])
            elif op == "create_pipeline" and shared.connections:
                r = await call(client, stats, op, "POST", "/v1/pipelines", {
                    "name": f"bench-{uuid.uuid4().hex[:12]}", "connection_id": rng.choice(shared.connections),
                    "streams": [{"name": s, "sync_mode": "full_refresh"} for s in STREAMS],
                    "destination": {"kind": "iceberg", "namespace": f"bench_{uuid.uuid4().hex[:8]}"}})
                if r is not None and r.status_code == 201:
                    mine.append(r.json()["id"])
                    shared.pipelines.append(r.json()["id"])
            elif op == "trigger_run" and mine:
                r = await call(client, stats, op, "POST", f"/v1/pipelines/{rng.choice(mine)}/runs")
                if r is not None and r.status_code in (201, 202):
                    shared.runs.append(r.json()["run_id"])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    clients = env_int("BENCH_API_CLIENTS", 200)
    seconds = env_int("BENCH_API_SECONDS", 60)
    platform = start()
    stats, shared = Stats(), Shared()
    try:
        with Memory(platform.process.pid) as memory:
            began = time.monotonic()
            deadline = began + seconds
            await asyncio.gather(*(client_loop(platform, deadline, stats, shared, n) for n in range(clients)))
            elapsed = time.monotonic() - began
            memory.sample()
    finally:
        platform.stop()
    every = [x for xs in stats.latencies.values() for x in xs]
    requests = len(every) + sum(stats.transport_errors.values())
    errors_5xx = sum(n for code, n in stats.statuses.items() if code >= 500)
    errors_4xx = sum(n for code, n in stats.statuses.items() if 400 <= code < 500)
    transport = sum(stats.transport_errors.values())
    print(f"{clients} clients for {elapsed:.0f} s against tidemark up ({platform.home}):")
    print(f"  {'operation':<18} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for op, _ in MIX:
        lat = stats.latencies.get(op, [])
        codes = ", ".join(f"{code}: {n}" for (o, code), n in sorted(stats.by_op.items()) if o == op)
        print(f"  {op:<18} {len(lat):>7} {percentile(lat, 0.5) * 1000:>8.1f} {percentile(lat, 0.99) * 1000:>8.1f}"
              f"  {codes}")
    for sample in stats.samples_5xx:
        print(f"  5xx: {sample}")
    if stats.transport_errors:
        print(f"  transport errors: {dict(stats.transport_errors)}")
    print(f"  peak RSS: embedded process {memory.peak_main / 2**20:.0f} MB, with its workers "
          f"{memory.peak_tree / 2**20:.0f} MB (at most {memory.peak_workers} workers at once)")
    mean = statistics.fmean(every) * 1000 if every else 0.0
    print(f"BENCH clients={clients} seconds={seconds} requests={requests} rps={requests / elapsed:.0f} "
          f"p50_ms={percentile(every, 0.5) * 1000:.1f} p99_ms={percentile(every, 0.99) * 1000:.1f} "
          f"mean_ms={mean:.1f} errors_5xx={errors_5xx} errors_4xx={errors_4xx} errors_transport={transport} "
          f"error_rate={(errors_5xx + transport) / max(requests, 1):.4f} runs={len(shared.runs)} "
          f"peak_rss_mb={memory.peak_tree / 2**20:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
