"""Bus metrics, declared once. Labels are topics, event types, consumer groups and services: small,
fixed sets."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "tidemark_events_published_total", "Events acknowledged by the broker.", ["topic", "type"]
)
EVENTS_CONSUMED = Counter(
    "tidemark_events_consumed_total",
    "Events handled by a consumer group, by outcome (ok, duplicate, failed, retried; ignored: not a type it applies).",
    ["group", "type", "outcome"],
)
# Labelled by the service whose outbox it is (six relays share the embedded platform's /metrics). Not
# `service`: the Prometheus Operator gives every target a `service` label, which would shadow it.
OUTBOX_PENDING = Gauge(
    "tidemark_outbox_pending_events", "Events written but not yet published, by the service that wrote them.",
    ["outbox"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "tidemark_outbox_oldest_pending_age_seconds",
    "Age of the oldest event written but not yet published (0 when none waits), by service.", ["outbox"],
)
OUTBOX_PUBLISH_SECONDS = Histogram(
    "tidemark_outbox_publish_seconds", "Time to publish one batch of outbox events."
)
CONSUMER_LAG = Gauge(
    "tidemark_consumer_lag_messages",
    "Messages a consumer group has yet to handle, by topic: on Kafka the sum over this process's "
    "partitions of highwater minus position; on the in-process bus the events queued for the group.",
    ["group", "topic"],
)
