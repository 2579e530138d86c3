"""impact-svc metrics, declared once. Labels are outcomes: a small, fixed set."""

from prometheus_client import Counter

ALERT_DELIVERIES = Counter(
    "tidemark_alert_deliveries_total", "Alert deliveries to webhooks, by outcome (sent, failed).", ["outcome"],
)
DRIFTS_ANALYSED = Counter("tidemark_drift_analyses_total", "Schema drift events analysed for impact.")
