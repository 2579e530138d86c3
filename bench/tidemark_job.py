"""One Tidemark load, run as its own process so its peak RSS is the pipeline's alone.

The worker's own loading code (``load_stream``) reads the source table and writes the
Iceberg table. Argument: a JSON object with the connection parts, ``source`` (``postgres``
or ``mysql``), ``stream`` (``schema.table``), ``home`` (the warehouse directory) and
``mode``: ``full_refresh`` (a Full Refresh stream), ``incremental`` (an incremental stream on
``updated_at`` merged on ``id``; its first run into an empty home reads everything), ``read``
(the Full Refresh stream's read alone, batches discarded: the source's share of a load, with
Tidemark's casts and its reconciliation count, and nothing written).
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

# Imported here, not lazily inside the timed run: the clock measures the pipeline, not module loading
# (a worker pays its imports once at start; "with process start" in the output includes them).
import pyiceberg.catalog.sql  # noqa: F401
import sqlalchemy.dialects.sqlite  # noqa: F401 - the catalog's dialect, as the worker's fork server imports it
from rss import peak_rss_mb

from tidemark.connectors import Source
from tidemark.connectors.sql.mysql import MySQLConfig, MySQLSource
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec, SyncMode
from tidemark.lakehouse import Lakehouse
from tidemark.lakehouse.settings import LakehouseSettings
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_ingest.worker.memory import use_jemalloc


def open_source(args: dict[str, object]) -> Source:
    parts = {"host": args["host"], "port": args["port"], "user": args["user"], "database": args["database"]}
    if args.get("source") == "mysql":
        return MySQLSource(MySQLConfig.model_validate(parts))
    return PostgresSource(PostgresConfig.model_validate(parts))


def main() -> None:
    args = json.loads(sys.argv[1])
    use_jemalloc()  # as the worker does at start
    source = open_source(args)
    lake = Lakehouse(LakehouseSettings().resolve(Path(args["home"])))
    if args["mode"] == "full_refresh":
        stream = StreamSpec(name=args["stream"], sync_mode=SyncMode.FULL_REFRESH)
    else:
        stream = StreamSpec(name=args["stream"], sync_mode=SyncMode.INCREMENTAL, cursor_field="updated_at",
                            primary_key=["id"])
    if args["mode"] == "read":
        read_only(source, stream)
        return
    destination = DestinationSpec(namespace="bench")
    started = time.perf_counter()
    stats = load_stream(lake, source, destination, stream, str(uuid.uuid4()), Progress())
    seconds = time.perf_counter() - started
    source.close()
    if stats.status != "succeeded":
        raise SystemExit(f"tidemark {args['mode']} failed: {stats.error}")
    table = lake.catalog.load_table(stats.table)
    snapshot = table.current_snapshot()
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    total = int(summary.get("total-records", -1))
    print(json.dumps({"seconds": seconds, "rows_read": stats.rows_read, "rows_written": stats.rows_written,
                      "table_rows": total, "bytes": stats.bytes_written, "table": stats.table,
                      "snapshot_id": stats.snapshot_id, "peak_rss_mb": peak_rss_mb()}))


def read_only(source: Source, stream: StreamSpec) -> None:
    started = time.perf_counter()
    rows = sum(batch.num_rows for batch in source.read(stream, None))
    counted = source.snapshot_rows(stream)
    seconds = time.perf_counter() - started
    source.close()
    if counted is not None and counted != rows:
        raise SystemExit(f"read {rows} rows, but the source counted {counted}")
    print(json.dumps({"seconds": seconds, "rows_read": rows, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
