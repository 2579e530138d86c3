"""make bench-maintenance: what compaction buys a table that incremental merges wore down.

A table of BENCH_MAINT_ROWS rows (default 5,000,000) gets BENCH_MAINT_RUNS incremental merge-on-read
runs (default 100), each updating BENCH_MAINT_CHANGE of the rows (default 1%, keys spread over the
table). Then: a full scan before compaction, the compaction (in a child process, so its peak RSS is
its own), a full scan after it, and a full scan of a freshly written table with the same rows. The rows
are checked against a model of the source (count and a checksum of every row's version) before and
after. Goal (issue 14): scan after within 1.2x of the fresh one; compaction peak RSS <= 500 MB.

Last line: ``BENCH runs=... scan_before_s=... scan_after_s=... scan_fresh_s=... compact_s=... peak_rss_mb=...``
"""

from __future__ import annotations

import array
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, open_catalog, write_stream
from tidemark.lakehouse.maintenance import compact_table, table_health

ROWS = int(os.environ.get("BENCH_MAINT_ROWS", "5000000"))
RUNS = int(os.environ.get("BENCH_MAINT_RUNS", "100"))
CHANGE = float(os.environ.get("BENCH_MAINT_CHANGE", "0.01"))
TABLE = "bench.orders"
FRESH = "bench.fresh"
CHUNK = 500_000
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("version", pa.int64()), pa.field("customer", pa.string()),
                    pa.field("amount", pa.float64())])


def rows(ids: list[int], version: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([version] * len(ids), pa.int64()),
                            pa.array([f"customer-{i % 9973}" for i in ids]), pa.array([i * 0.25 for i in ids])],
                           schema=SCHEMA)


def initial() -> Iterator[pa.RecordBatch]:
    for start in range(0, ROWS, CHUNK):
        yield rows(list(range(start, min(start + CHUNK, ROWS))), 0)


def scan_seconds(catalog_settings: LakehouseSettings, identifier: str) -> tuple[float, int, int]:
    """Full scan (every column), batch by batch; its time, the rows and the sum of versions."""
    table = open_catalog(catalog_settings).load_table(identifier)
    started = time.perf_counter()
    count = total = 0
    for batch in table.scan().to_arrow_batch_reader():
        count += batch.num_rows
        total += pc.sum(batch.column("version")).as_py() or 0
    return time.perf_counter() - started, count, total


def compact_child(home: str) -> None:
    settings = LakehouseSettings().resolve(Path(home))
    started = time.perf_counter()
    result = compact_table(open_catalog(settings), TABLE)
    print(json.dumps({"seconds": time.perf_counter() - started, "files_before": result.data_files_before,
                      "files_after": result.data_files_after, "deletes_before": result.delete_files_before,
                      "deletes_after": result.delete_files_after, "abandoned": result.abandoned,
                      "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's high-water RSS since its exec (VmHWM). ru_maxrss would also count the copy of the big
    parent a fork makes before the exec, which inflated the figure to the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-maintenance-"))
    settings = LakehouseSettings().resolve(home)
    catalog = open_catalog(settings)
    rng = random.Random(14)  # noqa: S311 - benchmark data, nothing secret
    model = array.array("q", bytes(8 * ROWS))  # each row's version, as the source has it
    started = time.perf_counter()
    write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.FULL_REFRESH, ["id"], "run-0", "version"), initial())
    print(f"loaded {ROWS:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    changed = max(1, int(ROWS * CHANGE))
    for run in range(1, RUNS + 1):
        ids = sorted(rng.sample(range(ROWS), changed))
        for i in ids:
            model[i] = run
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{run}", "version"),
                     [rows(ids, run)])
        if run % 10 == 0:
            print(f"  {run} runs, {time.perf_counter() - started:.1f} s", flush=True)
    health = table_health(catalog, TABLE)
    print(f"before: {health.data_files} data files, {health.delete_files} delete files, "
          f"{health.snapshots} snapshots", flush=True)

    expected = (ROWS, sum(model))
    before_s, *found = scan_seconds(settings, TABLE)
    assert tuple(found) == expected, f"rows before compaction {found} != source {expected}"

    child = subprocess.run([sys.executable, __file__, "compact", str(home)], check=True, capture_output=True,
                           text=True)
    compaction = json.loads(child.stdout.strip().splitlines()[-1])
    peak_mb = compaction["peak_rss_mb"]  # the child's own high-water mark (VmHWM), imports included
    print(f"compaction: {compaction}", flush=True)
    after_s, *found = scan_seconds(settings, TABLE)
    assert tuple(found) == expected, f"rows after compaction {found} != source {expected}"

    # The same rows, written once.
    def current() -> Iterator[pa.RecordBatch]:
        yield from open_catalog(settings).load_table(TABLE).scan().to_arrow_batch_reader()

    write_stream(catalog, WriteRequest(FRESH, SCHEMA, SyncMode.FULL_REFRESH, ["id"], "fresh", "version"), current())
    fresh_s, *found = scan_seconds(settings, FRESH)
    assert tuple(found) == expected, f"rows of the fresh table {found} != source {expected}"
    print(f"rows checked: {ROWS:,} (version checksum {expected[1]})")
    print(f"BENCH runs={RUNS} scan_before_s={before_s:.2f} scan_after_s={after_s:.2f} scan_fresh_s={fresh_s:.2f} "
          f"compact_s={compaction['seconds']:.2f} peak_rss_mb={peak_mb:.0f} rows={ROWS}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "compact":
        compact_child(sys.argv[2])
    else:
        main()
