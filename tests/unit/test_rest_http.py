"""The REST sources' shared HTTP layer against a real loopback server: retries on 429 with
``Retry-After`` and on 5xx, OAuth 2 tokens refreshed mid-run, timeouts, per-connection rate
limits, and error messages that say what to do and never hold a secret.

Shapes follow RFC 9110 §10.2.3 (Retry-After), RFC 6749 §5.2 (OAuth token errors:
``invalid_grant``, ``invalid_client``) and the vendors' rate-limit pages:
https://developers.hubspot.com/docs/api/usage-details#rate-limits,
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY

from tidemark.connectors.rest.auth import BearerToken, OAuth2, basic
from tidemark.connectors.rest.errors import Advice
from tidemark.connectors.rest.http import RestClient
from tidemark.connectors.rest.paging import cursor_pages
from tidemark.connectors.rest.ratelimit import RateLimiter
from tidemark.errors import FailureKind, SourceError
from tidemark_testing.fake_vendors.server import Faults, form, install_faults, serving

pytestmark = pytest.mark.unit

TOKEN = "pat-na1-SECRET-7f3e"
REFRESH = "refresh-SECRET-91ab"
CLIENT_SECRET = "client-SECRET-55cd"
ADVICE = Advice(vendor="Acme", credentials="create a new token and update access_token",
                credentials_field="access_token", permission="grant the token the read scopes")


class Vendor:
    """A tiny API: /items pages, /slow hangs, /echo repeats the caller's auth header in a 400."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.tokens_issued = 0
        self.current: str | None = None
        self.revoked = False
        self.expire_after: int | None = None
        self.served_with_token = 0
        self.app = FastAPI()
        install_faults(self.app, self.faults, exempt=("/oauth",))
        app = self.app

        @app.post("/oauth/token")
        async def token(request: Request) -> JSONResponse:
            sent = await form(request)
            grant_type, client_secret, refresh_token = (sent.get(k) for k in
                                                        ("grant_type", "client_secret", "refresh_token"))
            if client_secret != CLIENT_SECRET:
                return JSONResponse({"error": "invalid_client", "error_description": "bad client"}, 400)
            if grant_type == "refresh_token" and (self.revoked or refresh_token != REFRESH):
                return JSONResponse({"error": "invalid_grant", "error_description": "expired access/refresh token"},
                                    400)
            self.tokens_issued += 1
            self.current = f"access-{self.tokens_issued}"
            self.served_with_token = 0
            return JSONResponse({"access_token": self.current, "token_type": "Bearer",
                                 "instance_url": "https://example.my.salesforce.com"})

        def authorised(authorization: str | None) -> JSONResponse | None:
            if authorization == f"Bearer {TOKEN}":
                return None
            if self.current and authorization == f"Bearer {self.current}":
                if self.expire_after is not None and self.served_with_token >= self.expire_after:
                    return JSONResponse([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                                        401)
                self.served_with_token += 1
                return None
            return JSONResponse({"message": f"bad token {authorization}"}, 401)

        @app.get("/items")
        def items(authorization: str | None = Header(default=None), after: int = 0) -> Any:
            if (refused := authorised(authorization)) is not None:
                return refused
            nxt = after + 2
            return {"results": [after, after + 1], **({"paging": {"next": {"after": str(nxt)}}} if nxt < 10 else {})}

        @app.get("/slow")
        async def slow() -> dict[str, bool]:
            await asyncio.sleep(2)
            return {"ok": True}

        @app.get("/echo")
        def echo(request: Request) -> JSONResponse:
            return JSONResponse({"message": f"invalid header {request.headers.get('authorization')}"}, 400)


@pytest.fixture(scope="module")
def vendor_server() -> Iterator[tuple[Vendor, str]]:
    vendor = Vendor()
    with serving(vendor.app) as uri:
        yield vendor, uri


@pytest.fixture
def vendor(vendor_server: tuple[Vendor, str]) -> Vendor:
    v = vendor_server[0]
    v.faults.__init__()  # type: ignore[misc]
    v.revoked, v.expire_after, v.current = False, None, None
    return v


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


OPEN: list[RestClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def client(uri: str, sleeps: Sleeps, **kwargs: Any) -> RestClient:
    kwargs.setdefault("auth", BearerToken(TOKEN))
    made = RestClient(uri, advice=ADVICE, secrets=[TOKEN, REFRESH, CLIENT_SECRET], sleep=sleeps, **kwargs)
    OPEN.append(made)
    return made


def oauth(uri: str, refresh_token: str | None = REFRESH, secret: str = CLIENT_SECRET) -> OAuth2:
    return OAuth2(f"{uri}/oauth/token", "client-id", secret, refresh_token=refresh_token, vendor="Acme",
                  reconnect="reconnect the Acme connection to authorize Tidemark again")


def test_a_429_storm_waits_as_long_as_retry_after_asks(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    vendor.faults.too_many, vendor.faults.retry_after = 5, "3"
    sleeps = Sleeps()

    def metric(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"vendor": "Acme", **labels}) or 0.0

    limited, waited = metric("tidemark_source_api_requests_total", outcome="rate_limited"), \
        metric("tidemark_source_api_retry_wait_seconds_total")
    body = client(vendor_server[1], sleeps).json("GET", "/items", what="list items")
    assert body["results"] == [0, 1]
    assert sleeps == [3.0] * 5
    assert metric("tidemark_source_api_requests_total", outcome="rate_limited") - limited == 5
    assert metric("tidemark_source_api_retry_wait_seconds_total") - waited == 15


def test_retry_after_as_an_http_date_is_honoured(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    vendor.faults.too_many = 1
    vendor.faults.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    sleeps = Sleeps()
    client(vendor_server[1], sleeps).json("GET", "/items", what="list items")
    assert len(sleeps) == 1
    assert 25 <= sleeps[0] <= 31


def test_a_retry_after_beyond_the_longest_wait_fails_at_once_and_says_when(
    vendor: Vendor, vendor_server: tuple[Vendor, str]
) -> None:
    vendor.faults.too_many, vendor.faults.retry_after = 1, "86400"
    sleeps = Sleeps()
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], sleeps).json("GET", "/items", what="list items")
    assert caught.value.kind is FailureKind.TRANSIENT
    assert "asks to wait 86400 s" in caught.value.message
    assert sleeps == []


def test_a_429_storm_longer_than_the_attempts_says_the_rate_limit_is_used_up(
    vendor: Vendor, vendor_server: tuple[Vendor, str]
) -> None:
    vendor.faults.too_many, vendor.faults.retry_after = 100, "1"
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), max_attempts=4).json("GET", "/items", what="list items")
    assert caught.value.kind is FailureKind.TRANSIENT
    assert "429 Too Many Requests to list items (4 attempts" in caught.value.message
    assert "lower requests_per_second" in caught.value.message
    assert vendor.faults.too_many == 96


def test_a_5xx_burst_is_retried_with_growing_backoff(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    vendor.faults.server_errors = 4
    sleeps = Sleeps()
    assert client(vendor_server[1], sleeps).json("GET", "/items", what="list items")["results"] == [0, 1]
    assert len(sleeps) == 4
    assert all(0 < s <= 30 for s in sleeps)
    assert sleeps[-1] > 2  # 0.5 * 2**3 plus jitter: backoff grows


def test_endless_5xx_is_a_transient_failure_that_can_be_retried_later(
    vendor: Vendor, vendor_server: tuple[Vendor, str]
) -> None:
    vendor.faults.server_errors, vendor.faults.server_error_status = 50, 502
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), max_attempts=3).json("GET", "/items", what="list items")
    assert caught.value.kind is FailureKind.TRANSIENT
    assert "answered 502 Bad Gateway to list items 3 times in a row" in caught.value.message


def test_a_timeout_is_retried_then_names_the_setting(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), timeout=0.2, max_attempts=2).json("GET", "/slow", what="read slowly")
    assert caught.value.kind is FailureKind.TRANSIENT
    assert "did not answer read slowly within 0.2 s (2 attempts): raise timeout_seconds" in caught.value.message


def test_an_unreachable_host_says_so(vendor: Vendor) -> None:
    with pytest.raises(SourceError) as caught:
        client("http://127.0.0.1:9", Sleeps(), max_attempts=2).json("GET", "/items", what="list items")
    assert "cannot reach Acme at 127.0.0.1 to list items" in caught.value.message
    assert "check base_url" in caught.value.message


def test_a_rejected_token_says_how_to_fix_it_without_echoing_it(
    vendor: Vendor, vendor_server: tuple[Vendor, str], caplog: pytest.LogCaptureFixture
) -> None:
    vendor.faults.too_many = 1  # a retry is logged on the way
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), auth=BearerToken(TOKEN + "x")).json("GET", "/items", what="list items")
    assert caught.value.kind is FailureKind.CONFIG
    assert caught.value.detail["field"] == "access_token"
    assert "rejected the connection's credentials" in caught.value.message
    assert "create a new token and update access_token" in caught.value.message
    assert TOKEN not in caught.value.message
    assert "retrying in 1.0 s" in caplog.text
    assert TOKEN not in caplog.text


def test_a_secret_echoed_by_the_vendor_is_masked(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps()).json("GET", "/echo", what="echo")
    assert caught.value.kind is FailureKind.CONFIG
    assert "invalid header Bearer **********" in caught.value.message
    assert TOKEN not in caught.value.message


def test_basic_credentials_echoed_by_the_vendor_are_masked(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    # Basic auth travels as base64("user:token"): the vendor echoes that, never the token itself.
    encoded = base64.b64encode(f"bot@example.com:{TOKEN}".encode()).decode()
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), auth=basic("bot@example.com", TOKEN)).json("GET", "/echo", what="echo")
    assert encoded not in caught.value.message
    assert encoded.rstrip("=") not in caught.value.message
    assert "invalid header Basic **********" in caught.value.message


def test_an_expired_access_token_is_refreshed_mid_run(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    vendor.expire_after = 2
    auth = oauth(vendor_server[1])
    api = client(vendor_server[1], Sleeps(), auth=auth)
    pages = list(cursor_pages(api, "GET", "/items", what="list items", name="after",
                              next_cursor=lambda p: p.get("paging", {}).get("next", {}).get("after")))
    assert [x for p in pages for x in p["results"]] == list(range(10))
    assert auth.fetched == 3  # first token, then a new one each time the old one expired
    assert auth.token["instance_url"] == "https://example.my.salesforce.com"


def test_an_issued_access_token_echoed_by_the_vendor_is_masked(
    vendor: Vendor, vendor_server: tuple[Vendor, str]
) -> None:
    auth = oauth(vendor_server[1])
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), auth=auth).json("GET", "/echo", what="echo")
    assert auth.token["access_token"] not in caught.value.message
    assert "invalid header Bearer **********" in caught.value.message


def test_client_credentials_get_a_token_without_a_refresh_token(
    vendor: Vendor, vendor_server: tuple[Vendor, str]
) -> None:
    auth = oauth(vendor_server[1], refresh_token=None)
    assert client(vendor_server[1], Sleeps(), auth=auth).json("GET", "/items", what="list items")["results"] == [0, 1]


def test_a_revoked_refresh_token_asks_to_reconnect(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    vendor.revoked = True
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), auth=oauth(vendor_server[1])).json("GET", "/items", what="list items")
    assert caught.value.kind is FailureKind.CONFIG
    assert caught.value.detail["field"] == "refresh_token"
    assert "refresh token was revoked or has expired" in caught.value.message
    assert "reconnect the Acme connection" in caught.value.message
    assert REFRESH not in caught.value.message


def test_a_wrong_client_secret_names_the_client_settings(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    with pytest.raises(SourceError) as caught:
        client(vendor_server[1], Sleeps(), auth=oauth(vendor_server[1], secret="nope")).json(
            "GET", "/items", what="list items")
    assert caught.value.detail["field"] == "client_secret"
    assert "check client_id and client_secret" in caught.value.message


def test_a_connection_rate_limit_spaces_requests() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == [0.5] * 4
    assert now[0] == 2.0


def test_the_rate_limit_applies_to_real_requests(vendor: Vendor, vendor_server: tuple[Vendor, str]) -> None:
    sleeps = Sleeps()
    api = client(vendor_server[1], sleeps, requests_per_second=1000)
    api.limiter = RateLimiter(1.0, burst=1.0, clock=lambda: 0.0, sleep=sleeps)
    for _ in range(3):
        api.json("GET", "/items", what="list items")
    assert sleeps == [1.0, 2.0]  # a frozen clock: each request waits for one more token
