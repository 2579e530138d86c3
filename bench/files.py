"""`make bench-files`: one CSV object of several hundred MB in moto's S3, read by the S3 source in bounded
batches, beside pyarrow reading the same object directly (streaming, and whole), each in its own process
so each peak RSS is its own. Then the worker's whole path (source → Iceberg) on the same object.

Environment: ``BENCH_FILE_ROWS`` (default 5,000,000 rows, about 450 MB). The last line printed is
machine-readable (``BENCH ...``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "files"
KEY_ID, SECRET, BUCKET, KEY = "bench", "bench-secret", "bench-files", "exports/orders/orders.csv"
CHUNK = 500_000
RUNS = ["pyarrow-stream", "tidemark-read", "pyarrow-table", "tidemark-load"]


def log(message: str) -> None:
    print(f"[bench-files] {message}", flush=True)


def make_csv(path: Path, rows: int) -> int:
    """``rows`` rows of orders as CSV; returns the sum of ids (what every reader must agree on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pacsv.CSVWriter(str(path), pa.schema([("id", pa.int64()), ("created_at", pa.timestamp("s")),
                                               ("amount", pa.float64()), ("status", pa.string()),
                                               ("note", pa.string())])) as writer:
        for start in range(0, rows, CHUNK):
            ids = pa.array(range(start + 1, min(rows, start + CHUNK) + 1), pa.int64())
            n = len(ids)
            created = pc.cast(pc.add(pc.multiply(ids, 37), 1_700_000_000), pa.timestamp("s"))
            amount = pc.divide(pc.cast(pc.bit_wise_and(pc.multiply(ids, 7919), 0xFFFF), pa.float64()), 100.0)
            status = pc.take(pa.array(["new", "paid", "shipped", "returned"]), pc.bit_wise_and(ids, 3))
            note = pc.binary_join_element_wise(pa.array(["order note number"] * n), pc.cast(ids, pa.string()),
                                               pa.array(["and some more text to pad it"] * n), " ")
            writer.write_batch(pa.record_batch([ids, created, amount, status, note],
                                               names=["id", "created_at", "amount", "status", "note"]))
    return rows * (rows + 1) // 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_child(args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "files_job.py"), json.dumps(args)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{args['how']} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    import boto3  # type: ignore[import-untyped]
    from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
    from moto.server import ThreadedMotoServer

    rows = int(os.environ.get("BENCH_FILE_ROWS", "5000000"))
    shutil.rmtree(WORK, ignore_errors=True)
    local = WORK / "orders.csv"
    log(f"writing {rows:,} rows of CSV")
    id_sum = make_csv(local, rows)
    size_mb = local.stat().st_size / 1e6
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET)
        s3.create_bucket(Bucket=BUCKET)
        log(f"uploading {size_mb:,.0f} MB to moto")
        s3.upload_file(str(local), BUCKET, KEY, Config=TransferConfig(multipart_chunksize=64 << 20))
        local.unlink()
        results = {}
        for how in RUNS:
            home = WORK / how
            args = {"how": how, "endpoint": endpoint, "bucket": BUCKET, "key": KEY, "key_id": KEY_ID,
                    "secret": SECRET, "home": str(home)}
            result = run_child(args)
            if (result["rows"], result["id_sum"]) != (rows, id_sum):
                raise SystemExit(f"{how} read {result['rows']:,} rows (id sum {result['id_sum']}), "
                                 f"expected {rows:,} ({id_sum})")
            results[how] = result
            log(f"{how:15} {result['seconds']:7.2f} s  {rows / result['seconds']:>12,.0f} rows/s  "
                f"peak RSS {result['peak_rss_mb']:7.0f} MB  (rows and id sum match)")
            shutil.rmtree(home, ignore_errors=True)
    finally:
        server.stop()
    read = results["tidemark-read"]
    log(f"largest batch from the source: {read['max_batch_rows']:,} rows")
    fields = {"file_mb": f"{size_mb:.0f}", "rows": rows, "rows_match": "yes"}
    for how, r in results.items():
        name = how.replace("-", "_")
        fields[f"{name}_s"] = f"{r['seconds']:.2f}"
        fields[f"{name}_rss_mb"] = f"{r['peak_rss_mb']:.0f}"
    print("BENCH " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


if __name__ == "__main__":
    main()
