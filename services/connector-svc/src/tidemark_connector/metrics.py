"""connector-svc metrics, declared once. Labels are connector types and outcomes: small, fixed sets."""

from collections.abc import Iterable

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


def series_at_zero(connector_types: Iterable[str]) -> None:
    """Every check and discovery series exists at 0 from start-up, so the first failed check of a type
    shows as an increase (rate, increase, alerts) instead of a new series."""
    for connector_type in connector_types:
        for outcome in ("succeeded", "failed"):
            CONNECTION_CHECKS.labels(connector_type, outcome)
            CATALOG_DISCOVERIES.labels(connector_type, outcome)
