"""impact-svc metrics, declared once. Labels are outcomes: a small, fixed set."""

from prometheus_client import Counter

ALERT_DELIVERIES = Counter(
    "tidemark_alert_deliveries_total", "Alert deliveries to webhooks, by outcome (sent, failed).", ["outcome"],
)
# Every outcome exists from the start at 0, so the first failure shows as an increase, not as a new series.
for _outcome in ("sent", "failed"):
    ALERT_DELIVERIES.labels(_outcome)
DRIFTS_ANALYSED = Counter("tidemark_drift_analyses_total", "Schema drift events analysed for impact.")
