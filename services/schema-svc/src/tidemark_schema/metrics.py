"""schema-svc metrics, declared once. Labels are outcomes: a small, fixed set."""

from prometheus_client import Counter, Histogram

SCHEMA_POLLS = Counter(
    "tidemark_schema_polls_total",
    "Schema polls of watched connections, by outcome (unchanged, changed, discovered, failed).",
    ["outcome"],
)
SCHEMA_POLL_DURATION = Histogram(
    "tidemark_schema_poll_duration_seconds", "Time one poll took (fingerprint, and discover when it changed).",
)
DRIFT_EVENTS = Counter(
    "tidemark_schema_drift_events_total",
    "Schema drift events detected, by whether a change was breaking (true, false).", ["breaking"],
)
# Every label value exists from the start at 0, so a first drift or failure shows as an increase.
for _breaking in ("true", "false"):
    DRIFT_EVENTS.labels(_breaking)
for _outcome in ("unchanged", "changed", "discovered", "failed"):
    SCHEMA_POLLS.labels(_outcome)
