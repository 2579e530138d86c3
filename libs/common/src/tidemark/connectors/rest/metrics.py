"""Metrics of the REST sources' HTTP layer; labels are the vendor (three values) and the outcome."""

from prometheus_client import Counter

API_REQUESTS = Counter(
    "tidemark_source_api_requests_total", "Requests REST sources sent to vendor APIs, by outcome.",
    ["vendor", "outcome"],  # outcome: ok, client_error, rate_limited, server_error, timeout, network
)
API_RETRY_WAIT = Counter(
    "tidemark_source_api_retry_wait_seconds_total", "Seconds REST sources waited before retrying a request.",
    ["vendor"],
)
