"""The one HTTP client of the REST sources: ``httpx`` for the wire, ``tenacity`` for retries.

Every request waits for the connection's rate limiter, is retried on 429 (after the
``Retry-After`` the vendor asks for), on 5xx, timeouts and dropped connections with
exponential backoff and jitter, and fails with a :class:`~tidemark.errors.SourceError` that
says what to do. No secret of the connection reaches a message or a log line.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from tidemark.connectors.boundary import scrub
from tidemark.connectors.egress import GuardedTransport
from tidemark.connectors.rest.errors import RETRY_STATUSES, Advice, RetryableError, explain, retry_after
from tidemark.connectors.rest.metrics import API_REQUESTS, API_RETRY_WAIT
from tidemark.connectors.rest.ratelimit import RateLimiter
from tidemark.errors import FailureKind, SourceError
from tidemark.logs import fields

log = logging.getLogger("tidemark.connectors.rest")


class RestClient:
    """Requests to one vendor account; ``transport`` and ``sleep`` are for tests."""

    def __init__(
        self,
        base_url: str,
        *,
        advice: Advice,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str] = (),
        timeout: float = 30.0,
        requests_per_second: float | None = None,
        max_attempts: int = 8,
        max_wait: float = 120.0,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        url_field: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.advice = advice
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.secrets = [s for s in secrets if s]
        self.limiter = RateLimiter(requests_per_second, sleep=sleep) if requests_per_second else None
        self.requests = 0
        self.server_date: str | None = None
        self._date_seen_at = 0.0
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=30.0)
        # Every request, redirects and absolute next-page URLs included, goes to a checked, pinned address.
        guarded = transport or GuardedTransport(field=url_field)
        self.http = httpx.Client(base_url=base_url, auth=auth, timeout=timeout, transport=guarded,
                                 headers={"Accept": "application/json", **(headers or {})})

    def close(self) -> None:
        self.http.close()

    def json(self, method: str, url: str, *, what: str, **kwargs: Any) -> Any:
        """The JSON body of a successful request (see :meth:`request`)."""
        response = self.request(method, url, what=what, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise SourceError(self._safe(f"{self.advice.vendor} answered {what} with a body that is not JSON"),
                              FailureKind.TERMINAL) from exc

    def request(self, method: str, url: str, *, what: str, raw: bool = False, **kwargs: Any) -> httpx.Response:
        """Send with retries; ``what`` says, for error messages, what the request was for
        (``"list HubSpot contacts"``). ``raw`` returns 4xx answers instead of explaining them
        (for callers that read the body themselves, such as a token request)."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts), wait=self._wait, retry=retry_if_exception_type(RetryableError),
            sleep=self._sleep, reraise=True, before_sleep=lambda state: self._log_retry(state, what),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, url, what, raw, **kwargs)
        except RetryableError as exc:
            raise SourceError(self._safe(self._gave_up(exc, what)), FailureKind.TRANSIENT) from None
        except SourceError as exc:
            raise SourceError(self._safe(exc.message), exc.kind, **exc.detail) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _attempt(self, method: str, url: str, what: str, raw: bool, **kwargs: Any) -> httpx.Response:
        if self.limiter is not None:
            self.limiter.acquire()
        self.requests += 1
        vendor = self.advice.vendor
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            API_REQUESTS.labels(vendor, "timeout").inc()
            raise RetryableError(f"no answer within {self.timeout:g} s", timeout=True) from None
        except httpx.TransportError as exc:
            API_REQUESTS.labels(vendor, "network").inc()
            raise RetryableError(f"the connection failed ({type(exc).__name__}: {exc})") from None
        status = response.status_code
        API_REQUESTS.labels(vendor, "rate_limited" if status == 429 else "server_error" if status >= 500
                            else "client_error" if status >= 400 else "ok").inc()
        if status in RETRY_STATUSES:
            wait = retry_after(response)
            if wait is not None and wait > self.max_wait:
                raise SourceError(
                    f"{self.advice.vendor} answered {status} to {what} and asks to wait {wait:.0f} s before the "
                    f"next request (the account's API limit is used up): run the pipeline again after that",
                    FailureKind.TRANSIENT)
            raise RetryableError(f"{status} {response.reason_phrase}", status=status, retry_after=wait)
        if response.is_error and not raw:
            raise explain(response, self.advice, what)
        if "date" in response.headers:
            self.server_date, self._date_seen_at = response.headers["date"], time.monotonic()
        return response

    def server_now(self) -> datetime:
        """The vendor's clock (its last ``Date`` header, to the second, plus the time since), else ours:
        a read that ends "now" must end at the vendor's now, or clock skew moves records across runs."""
        if self.server_date:
            with contextlib.suppress(TypeError, ValueError):
                found = email.utils.parsedate_to_datetime(self.server_date)
                found = found if found.tzinfo else found.replace(tzinfo=UTC)
                # Floor the time since to whole seconds: never ahead of the vendor.
                return found + timedelta(seconds=int(time.monotonic() - self._date_seen_at))
        return datetime.now(UTC)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = exc.retry_after if isinstance(exc, RetryableError) and exc.retry_after is not None \
            else float(self._backoff(state))
        API_RETRY_WAIT.labels(self.advice.vendor).inc(wait)
        return wait

    def _log_retry(self, state: RetryCallState, what: str) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = exc.reason if isinstance(exc, RetryableError) else repr(exc)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(self._safe(f"{self.advice.vendor}: {what}: {reason}; retrying in {wait:.1f} s"),
                    extra=fields(vendor=self.advice.vendor, attempt=state.attempt_number,
                                 status=getattr(exc, "status", None)))

    def _gave_up(self, exc: RetryableError, what: str) -> str:
        vendor, n = self.advice.vendor, self.max_attempts
        if exc.status == 429:
            return (f"{vendor} kept answering 429 Too Many Requests to {what} ({n} attempts, waiting as it asked): "
                    "the account's API rate limit is shared with other integrations and is used up; lower "
                    "requests_per_second on the connection or run the pipeline at a quieter time")
        if exc.status is not None:
            return (f"{vendor} answered {exc.reason} to {what} {n} times in a row: its service is having trouble; "
                    "the run can be retried later")
        if exc.timeout:
            return (f"{vendor} did not answer {what} within {self.timeout:g} s ({n} attempts): raise "
                    "timeout_seconds on the connection if the account is just slow")
        return (f"cannot reach {vendor} at {self.http.base_url.host} to {what}: {exc.reason}; check base_url "
                "and the network")

    def _safe(self, message: str) -> str:
        # An OAuth access token is a secret too, though no config field holds it.
        issued = getattr(self.http.auth, "token", None)
        token = issued.get("access_token") if isinstance(issued, dict) else None
        derived: list[str] = getattr(self.http.auth, "secret_forms", [])  # basic auth's encoded header
        return scrub(message, [*self.secrets, *derived, *([token] if isinstance(token, str) else [])])
