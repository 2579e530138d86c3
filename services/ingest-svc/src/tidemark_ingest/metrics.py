"""ingest-svc metrics, declared once. Labels are run outcomes: a small, fixed set."""

from collections.abc import Sequence

from prometheus_client import Counter, Histogram

WORKER_RUNS = Counter(
    "tidemark_worker_runs_total",
    "Runs finished, by outcome (succeeded, partially_succeeded, failed, cancelled).",
    ["outcome"],
)
# Every outcome exists from the start at 0, so a first failure shows as an increase, not as a new series.
for _outcome in ("succeeded", "partially_succeeded", "failed", "cancelled"):
    WORKER_RUNS.labels(_outcome)
ROWS_WRITTEN = Counter("tidemark_rows_written_total", "Rows written to the lakehouse by finished runs.")
BYTES_WRITTEN = Counter(
    "tidemark_bytes_written_total", "Bytes of data files written to the lakehouse by finished runs."
)
WORKER_RUN_DURATION = Histogram(
    "tidemark_worker_run_duration_seconds",
    "Time from a worker starting a run to the run finishing.",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
WORKER_LAUNCHES = Counter(
    "tidemark_worker_launches_total",
    "Worker launches, by launcher (local, kubernetes) and outcome (started, failed).",
    ["launcher", "outcome"],
)
WORKER_ADOPTIONS = Counter(
    "tidemark_worker_adoptions_total",
    "Workers found running rather than started, by launcher and how (`create_conflict`: a retried create "
    "found its Job; `listed`: a Job found running when the launcher started).",
    ["launcher", "how"],
)
WORKER_FAILURES = Counter(
    "tidemark_worker_failures_total",
    "Runs a launcher failed for its worker's infrastructure, by launcher and reason (deadline_exceeded, "
    "container_failed, job_failed, vanished, image_pull, crash_loop, container_config, unschedulable).",
    ["launcher", "reason"],
)
WATCH_RESYNCS = Counter(
    "tidemark_worker_watch_resyncs_total",
    "Times the Kubernetes launcher listed its Jobs again (`expired`: 410 Gone; `error`: after an API error).",
    ["cause"],
)


def launcher_series_at_zero(launcher: str, failure_reasons: Sequence[str] = (), watches: bool = False) -> None:
    """Every series the chosen launcher can move exists at 0 from start-up, so its first failed launch,
    stuck pod or adoption shows as an increase (rate, increase, alerts) instead of a new series."""
    for outcome in ("started", "failed"):
        WORKER_LAUNCHES.labels(launcher, outcome)
    for reason in failure_reasons:
        WORKER_FAILURES.labels(launcher, reason)
    if watches:
        for how in ("create_conflict", "listed"):
            WORKER_ADOPTIONS.labels(launcher, how)
        for cause in ("expired", "error"):
            WATCH_RESYNCS.labels(cause)

# Table maintenance (docs/maintenance.md). Never labelled by table: per-table detail is in GET /v1/tables/{t}/health.
MAINTENANCE = Counter(
    "tidemark_maintenance_total",
    "Table maintenance passes, by how they were asked for (run, api) and outcome (succeeded, failed).",
    ["via", "outcome"],
)
# Every series exists from start-up at 0, so the first pass shows as an increase (rate, alerts).
for _via in ("run", "api"):
    for _outcome in ("succeeded", "failed"):
        MAINTENANCE.labels(_via, _outcome)
MAINTENANCE_RECLAIMED = Counter(
    "tidemark_maintenance_reclaimed_bytes_total", "Bytes of files deleted by snapshot expiry and orphan cleanup.",
)
MAINTENANCE_REWRITTEN = Counter(
    "tidemark_maintenance_rewritten_bytes_total", "Bytes of data and delete files compaction rewrote.",
)
_FILE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)
TABLE_DATA_FILES = Histogram(
    "tidemark_table_data_files", "Data files of a table after each run that wrote it (Iceberg).",
    buckets=_FILE_BUCKETS,
)
TABLE_DELETE_FILES = Histogram(
    "tidemark_table_delete_files", "Position-delete files of a table after each run that wrote it (Iceberg).",
    buckets=_FILE_BUCKETS,
)
