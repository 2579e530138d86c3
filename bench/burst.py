"""`make bench-burst`: many pipelines triggered at once on the embedded platform's local launcher.

Starts `tidemark up` with the default limits (`max_active_runs` 16, 4 per connection), creates
``BENCH_BURST_PIPELINES`` pipelines (default 50) of the bundled sample shop (two streams, full
refresh), each on its own connection unless ``BENCH_BURST_CONNECTIONS`` says fewer, and triggers every
one at the same moment. Then it waits (``BENCH_BURST_TIMEOUT`` s, default 900) until every run has
ended and checks, from the read API (`/v1/runs/{id}`), that:

- every run succeeded, and every stream reconciled (its counts are in the run);
- the queue drained in order: ordered by when they were queued, the runs were admitted
  (``requested_at``) in the same order among runs sharing a connection, and, when only
  ``max_active_runs`` can hold a run back (one connection per pipeline), over all runs;
- memory stayed bounded: the peak resident memory of the embedded process and of its whole
  process tree (the workers it spawned) is sampled throughout.

The last line: ``BENCH pipelines=N succeeded=S order_inversions=I drain_s=.. peak_rss_mb=.. ...``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from typing import Any

import httpx

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from platform_up import Memory, env_int, start

STREAMS = ["main.customers", "main.orders"]
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}


def inversions(runs: list[dict[str, Any]]) -> int:
    """Pairs admitted in the other order than they were queued."""
    ordered = sorted(runs, key=lambda r: (datetime.fromisoformat(r["queued_at"]), r["run_id"]))
    admitted = [datetime.fromisoformat(r["requested_at"]) for r in ordered]
    return sum(1 for i in range(len(admitted)) for j in range(i + 1, len(admitted)) if admitted[j] < admitted[i])


async def setup(client: httpx.AsyncClient, pipelines: int, connections: int) -> list[str]:
    conn_ids = []
    for n in range(connections):
        r = await client.post("/v1/connections", json={"name": f"burst-{n}", "type": "sqlite",
                                                       "config": {"path": "sample:shop"}})
        r.raise_for_status()
        conn_ids.append(r.json()["id"])
    ids = []
    for n in range(pipelines):
        r = await client.post("/v1/pipelines", json={
            "name": f"burst-{n}", "connection_id": conn_ids[n % connections],
            "streams": [{"name": s, "sync_mode": "full_refresh"} for s in STREAMS],
            "destination": {"kind": "iceberg", "namespace": f"burst_{n}"}})
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


async def main() -> None:
    count = env_int("BENCH_BURST_PIPELINES", 50)
    connections = min(count, env_int("BENCH_BURST_CONNECTIONS", count))
    timeout = env_int("BENCH_BURST_TIMEOUT", 900)
    platform = start()
    try:
        headers = {"Authorization": f"Bearer {platform.token}"}
        async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=120) as client:
            pipelines = await setup(client, count, connections)
            with Memory(platform.process.pid) as memory:
                began = time.monotonic()
                answers = await asyncio.gather(*(client.post(f"/v1/pipelines/{p}/runs") for p in pipelines))
                triggered = time.monotonic() - began
                statuses = sorted({a.status_code for a in answers})
                run_ids = [a.json()["run_id"] for a in answers if a.status_code in (201, 202)]
                runs: dict[str, dict[str, Any]] = {}
                deadline = began + timeout
                while len(runs) < len(run_ids) and time.monotonic() < deadline:
                    for run_id in run_ids:
                        if run_id in runs:
                            continue
                        r = await client.get(f"/v1/runs/{run_id}")
                        if r.status_code == 200 and r.json()["status"] in TERMINAL:
                            runs[run_id] = r.json()
                    await asyncio.sleep(1)
                drained = time.monotonic() - began
                memory.sample()
    finally:
        platform.stop()
    ended = list(runs.values())
    succeeded = sum(1 for r in ended if r["status"] == "succeeded")
    reconciled = sum(1 for r in ended for s in r["streams"] if (s.get("reconciliation") or {}).get("ok"))
    by_connection: dict[str, list[dict[str, Any]]] = {}
    for r in ended:
        by_connection.setdefault(r["connection_id"], []).append(r)
    per_connection = sum(inversions(rs) for rs in by_connection.values())
    overall = inversions(ended) if connections == count else per_connection
    for r in ended:
        if r["status"] != "succeeded":
            print(f"  run {r['run_id']} {r['status']}: {r['error']}")
    print(f"{count} pipelines on {connections} connection(s), triggered at once in {triggered:.1f} s "
          f"(answers {statuses}); {len(ended)} of {len(run_ids)} ended within {drained:.0f} s")
    print(f"  streams reconciled: {reconciled} of {len(STREAMS) * len(ended)}; admission order inversions: "
          f"{overall} (within a connection: {per_connection})")
    print(f"  peak RSS: embedded process {memory.peak_main / 2**20:.0f} MB, with its workers "
          f"{memory.peak_tree / 2**20:.0f} MB (at most {memory.peak_workers} workers at once)")
    print(f"BENCH pipelines={count} connections={connections} triggered={len(run_ids)} succeeded={succeeded} "
          f"reconciled_streams={reconciled} order_inversions={overall} drain_s={drained:.0f} "
          f"max_workers={memory.peak_workers} peak_rss_main_mb={memory.peak_main / 2**20:.0f} "
          f"peak_rss_mb={memory.peak_tree / 2**20:.0f}")
    if succeeded != count or overall:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
