"""connector-svc metrics, declared once. Labels are connector types and outcomes: small, fixed sets."""

from prometheus_client import Counter, Histogram

CONNECTION_CHECKS = Counter(
    "tidemark_connection_checks_total",
    "Connection checks, by connector type and outcome (succeeded, failed).",
    ["connector_type", "outcome"],
)
CONNECTION_CHECK_DURATION = Histogram(
    "tidemark_connection_check_duration_seconds", "Time a connection check took.", ["connector_type"]
)
CATALOG_DISCOVERIES = Counter(
    "tidemark_catalog_discoveries_total",
    "Catalog discoveries, by connector type and outcome (succeeded, failed).",
    ["connector_type", "outcome"],
)
