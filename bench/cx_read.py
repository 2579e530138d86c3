"""connectorx reading the MariaDB table into Arrow and discarding it: no casts, no count, nothing written.

This is the floor of any load that reads MySQL through connectorx (dlt's fastest backend and
Tidemark's MySQL reader alike): ``SELECT *`` with every column in connectorx's native types,
streamed in batches of 100,000 rows. Argument: a JSON object with ``url`` and ``table``. Prints
one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import connectorx as cx
from rss import peak_rss_mb


def main() -> None:
    args = json.loads(sys.argv[1])
    started = time.perf_counter()
    reader = cx.read_sql(args["url"], f"SELECT * FROM {args['table']}",  # noqa: S608 - the bench's own table
                         return_type="arrow_stream", batch_size=100_000)
    rows = sum(batch.num_rows for batch in reader)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows_read": rows, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
