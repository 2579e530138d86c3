"""Run as a separate process by test_lakehouse_orphans: write a stream that never ends, one small data file
after another, until the test SIGKILLs it. Arguments: a JSON object (see the test)."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator

import pyarrow as pa

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteOptions, WriteRequest, open_catalog, write_stream
from tidemark.lakehouse.parquet import write_parquet_stream

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("payload", pa.string())])


def endless() -> Iterator[pa.RecordBatch]:
    for n in itertools.count(10_000, 500):
        yield pa.record_batch([pa.array(range(n, n + 500), pa.int64()), pa.array(["x" * 64] * 500)], schema=SCHEMA)
        time.sleep(0.02)


def main() -> None:
    args = json.loads(sys.argv[1])
    settings = LakehouseSettings.model_validate(args["lakehouse"])
    request = WriteRequest(args["table"], SCHEMA, SyncMode.INCREMENTAL_APPEND, run_id="killed-run")
    options = WriteOptions(chunk_bytes=16 * 1024)
    if args.get("parquet"):
        write_parquet_stream(settings, request, endless(), options)
    else:
        write_stream(open_catalog(settings), request, endless(), options)


if __name__ == "__main__":
    main()
