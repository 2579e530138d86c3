"""Run as a separate process by test_crash_recovery: load one stream slowly so the test can SIGKILL it
after data files were written but before the commit. Arguments: a JSON object (see the test)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pyarrow as pa

from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import StreamSpec
from tidemark.lakehouse import WriteOptions, WriteRequest, open_catalog
from tidemark.lakehouse.iceberg import read_state, write_stream
from tidemark.lakehouse.settings import LakehouseSettings


def slowly(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch
        time.sleep(0.05)


def main() -> None:
    args = json.loads(sys.argv[1])
    source = PostgresSource(PostgresConfig(**args["source"]))
    stream = StreamSpec.model_validate(args["stream"])
    catalog = open_catalog(LakehouseSettings(**args["lakehouse"]))
    state = read_state(catalog, args["table"])
    write_stream(catalog, WriteRequest(args["table"], source.arrow_schema(stream), stream.sync_mode, stream.primary_key,
                                       args["run_id"], stream.cursor_field), slowly(source.read(stream, state)),
                 WriteOptions(chunk_bytes=128 * 1024))


if __name__ == "__main__":
    main()
