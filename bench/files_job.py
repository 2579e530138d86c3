"""One read of the benchmark's CSV object, run as its own process so its peak RSS is its own.

Argument: a JSON object with ``how`` (``tidemark-read``: the S3 source's batches; ``tidemark-load``: the
worker's ``load_stream`` into a local Iceberg warehouse; ``pyarrow-stream``: pyarrow's streaming CSV reader on
the same object, the floor; ``pyarrow-table``: pyarrow reading the whole object into one table), ``endpoint``,
``bucket``, ``key``, ``key_id``, ``secret`` and ``home``. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyarrow import fs as pafs
from rss import peak_rss_mb

from tidemark.connectors.files.s3 import S3Config, S3Source
from tidemark.events import DestinationSpec, StreamSpec
from tidemark_ingest.worker.memory import use_jemalloc


def source(a: dict[str, str]) -> S3Source:
    folder, _, name = a["key"].rpartition("/")
    return S3Source(S3Config(bucket=a["bucket"], prefix=folder, endpoint=a["endpoint"], access_key_id=a["key_id"],
                             secret_access_key=a["secret"], file_columns=False,
                             streams=[{"name": "orders", "glob": name, "format": "csv"}]))


def count(batches: object) -> tuple[int, int]:
    rows = total = 0
    for batch in batches:  # type: ignore[attr-defined]
        rows += batch.num_rows
        total += pc.sum(batch.column("id")).as_py() or 0
    return rows, total


def main() -> None:
    a = json.loads(sys.argv[1])
    how = a["how"]
    if how.startswith("tidemark"):
        use_jemalloc()  # as the worker does at start
    fs = pafs.S3FileSystem(endpoint_override=a["endpoint"], scheme="http", access_key=a["key_id"],
                           secret_key=a["secret"], region="us-east-1")
    path = f"{a['bucket']}/{a['key']}"
    max_batch = 0
    started = time.perf_counter()
    if how == "tidemark-read":
        src = source(a)
        sizes: list[int] = []

        def watched() -> object:
            for b in src.read(StreamSpec(name="orders"), None):
                sizes.append(b.num_rows)
                yield b

        rows, total = count(watched())
        max_batch = max(sizes)
    elif how == "tidemark-load":
        from pathlib import Path

        from tidemark.lakehouse import Lakehouse
        from tidemark.lakehouse.settings import LakehouseSettings
        from tidemark_ingest.worker.load import Progress, load_stream

        lake = Lakehouse(LakehouseSettings().resolve(Path(a["home"])))
        stats = load_stream(lake, source(a), DestinationSpec(namespace="bench"), StreamSpec(name="orders"),
                            "bench-files", Progress())
        assert stats.status == "succeeded", stats.error
        data = lake.catalog.load_table(stats.table).scan(selected_fields=("id",)).to_arrow()
        rows, total = data.num_rows, pc.sum(data.column("id")).as_py()
    elif how == "pyarrow-stream":
        with fs.open_input_stream(path) as f:
            rows, total = count(pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=4 << 20)))
    elif how == "pyarrow-table":
        with fs.open_input_stream(path) as f:
            table: pa.Table = pacsv.read_csv(f)
        rows, total = table.num_rows, pc.sum(table.column("id")).as_py()
    else:
        raise SystemExit(f"unknown mode {how!r}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "id_sum": total, "max_batch_rows": max_batch,
                      "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
