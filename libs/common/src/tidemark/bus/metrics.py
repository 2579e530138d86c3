"""Bus metrics, declared once. Labels are topics and event types: small, fixed sets."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "tidemark_events_published_total", "Events acknowledged by the broker.", ["topic", "type"]
)
EVENTS_CONSUMED = Counter(
    "tidemark_events_consumed_total",
    "Events handled by a consumer group, by outcome (ok, duplicate, failed, retried; ignored: not a type it applies).",
    ["group", "type", "outcome"],
)
OUTBOX_PENDING = Gauge("tidemark_outbox_pending_events", "Events written but not yet published.")
OUTBOX_PUBLISH_SECONDS = Histogram(
    "tidemark_outbox_publish_seconds", "Time to publish one batch of outbox events."
)
