"""One dlt load of the benchmark table, run inside the separate dlt virtualenv (.bench/dlt).

dlt's ``sql_database`` source with the given backend writes Parquet files to a local
``filesystem`` destination: its fastest path here (its Iceberg table format adds a
pyiceberg commit on top of the same files). Argument: a JSON object with ``url``,
``table``, ``backend``, ``chunk_size``, ``out`` and optionally ``conn`` (connectorx's URL).
Prints one JSON line with the rows the destination really holds, counted from the files.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# dlt warns once per chunk that it JSON-encodes the jsonb column; the counts below are what matters.
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import dlt
import pyarrow.parquet as pq
from dlt.sources.sql_database import sql_database
from rss import peak_rss_mb


def main() -> None:
    args = json.loads(sys.argv[1])
    out = Path(args["out"])
    backend_kwargs = {}
    if args["backend"] == "connectorx":
        # Streaming Arrow batches keeps its memory bounded (without it, connectorx reads the whole table).
        backend_kwargs = {"return_type": "arrow_stream", "batch_size": args["chunk_size"]}
        if args.get("conn"):
            backend_kwargs["conn"] = args["conn"]  # connectorx's own URL where SQLAlchemy's differs (MySQL)
    source = sql_database(args["url"], table_names=[args["table"]], backend=args["backend"],
                          chunk_size=args["chunk_size"], backend_kwargs=backend_kwargs,
                          reflection_level="full_with_precision")
    pipeline = dlt.pipeline(pipeline_name=f"bench_{args['backend']}", pipelines_dir=str(out / "pipelines"),
                            destination=dlt.destinations.filesystem(bucket_url=(out / "data").as_uri()),
                            dataset_name="bench", progress="log" if args.get("verbose") else None)
    started = time.perf_counter()
    pipeline.run(source, loader_file_format="parquet", write_disposition="replace")
    seconds = time.perf_counter() - started
    files = sorted((out / "data" / "bench" / args["table"]).rglob("*.parquet"))
    if not files:
        raise SystemExit(f"dlt wrote no Parquet files for {args['table']}")
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    print(json.dumps({"seconds": seconds, "table_rows": rows, "files": len(files), "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
