"""ingest-svc metrics, declared once. Labels are run outcomes: a small, fixed set."""

from prometheus_client import Counter, Histogram

WORKER_RUNS = Counter(
    "tidemark_worker_runs_total",
    "Runs finished, by outcome (succeeded, partially_succeeded, failed, cancelled).",
    ["outcome"],
)
ROWS_WRITTEN = Counter("tidemark_rows_written_total", "Rows written to the lakehouse by finished runs.")
WORKER_RUN_DURATION = Histogram(
    "tidemark_worker_run_duration_seconds",
    "Time from a worker starting a run to the run finishing.",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
WORKER_LAUNCHES = Counter(
    "tidemark_worker_launches_total", "Worker launches, by outcome (started, failed).", ["outcome"]
)
