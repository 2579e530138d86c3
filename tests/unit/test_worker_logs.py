"""The worker ships its log to jobs-svc as ``run.log`` events: bounded, numbered, secrets scrubbed,
and before the run's end (so a reader of a finished run has its whole log)."""

from __future__ import annotations

import base64
import logging
import threading
import uuid

import httpx
import pytest

from tests.fixtures.watched_bus import WatchedBus
from tests.unit.test_ingest_worker import (  # the real worker, run by ingest-svc in-process
    connector_url,  # noqa: F401 - a fixture
    events,
    request,
    service,  # noqa: F401 - a fixture
    settings,  # noqa: F401 - a fixture
    wait_finished,
)
from tidemark.events import Envelope, RunFinished, RunLogged, Topic
from tidemark.logs import fields, log_context
from tidemark.redact import MASK, Redactor
from tidemark_ingest.worker.logship import BUFFER, MESSAGE_CHARS, LogShipper

pytestmark = pytest.mark.unit


def test_secrets_leave_no_trace_in_shipped_text() -> None:
    redact = Redactor()
    redact.remember(["hunter2-secret", "p@ss/word"])
    for text, gone in [
        ("connecting with hunter2-secret", "hunter2-secret"),
        ("dsn postgresql://app:p%40ss%2Fword@db:5432/shop failed", "p%40ss%2Fword"),
        ("dsn mysql://root:other-pass@127.0.0.1/x", "other-pass"),
        ("options password=letmein host=db", "letmein"),
        ('{"api_key": "abc123xyz"}', "abc123xyz"),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi"),
        ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
    ]:
        scrubbed = redact(text)
        assert gone not in scrubbed, scrubbed
        assert MASK in scrubbed
    assert redact("read 1000 rows from main.orders") == "read 1000 rows from main.orders"


def test_secrets_leave_no_trace_in_any_form_they_travel_in() -> None:
    redact = Redactor()
    redact.remember(['p@ss/wo:rd "x"'])
    basic = base64.b64encode(b"bot@example.com:an-api-token").decode()
    for text, gone in [
        ("GET https://h/p%40ss/wo%3Ard%20%22x%22/path", "p%40ss/wo%3Ard"),  # URL-encoded as a path: `/` stays
        ('body {"password": "p@ss/wo:rd \\"x\\""}', 'p@ss/wo:rd \\"x\\"'),  # JSON-escaped
        (f"vendor said: invalid header Basic {basic}", basic),  # an echoed Basic header
    ]:
        scrubbed = redact(text)
        assert gone not in scrubbed, scrubbed
        assert MASK in scrubbed
    # Words after "Basic" that are no credentials stay.
    assert redact("Basic auth failed: Basic dG9rZW4=") == "Basic auth failed: Basic dG9rZW4="


def test_the_shipper_numbers_bounds_and_scrubs_records() -> None:
    redact = Redactor()
    redact.remember(["s3cr3t-value"])
    shipper = LogShipper(uuid.uuid4(), redact)
    log = logging.getLogger("tidemark.test.worker")
    log.setLevel(logging.INFO)
    with shipper, log_context(run_id="r", stream="main.orders"):
        log.info("read %d rows", 10, extra=fields(rows=10, dsn="postgresql://u:s3cr3t-value@h/db"))
        log.debug("not shipped: below the level")
        worker = threading.Thread(target=lambda: log.warning("x" * (MESSAGE_CHARS * 2)))
        worker.start()
        worker.join()
        try:
            raise ValueError("boom with s3cr3t-value")
        except ValueError:
            log.exception("failed")
    log.info("after: not shipped")
    records, dropped = shipper.take()
    assert [r.seq for r in records] == [0, 1, 2]
    assert dropped == 0
    first = records[0]
    assert (first.level, first.message, first.logger) == ("info", "read 10 rows", "tidemark.test.worker")
    assert first.fields["rows"] == 10
    assert first.fields["stream"] == "main.orders"
    assert "run_id" not in first.fields
    assert "s3cr3t-value" not in first.fields["dsn"]
    assert len(records[1].message) == MESSAGE_CHARS
    assert "ValueError" in records[2].message
    assert "s3cr3t-value" not in records[2].message

    with shipper:
        for i in range(BUFFER + 5):
            log.info("line %d", i)
    batch, dropped = shipper.take(limit=BUFFER * 2)
    assert (len(batch), dropped) == (BUFFER, 5)
    assert batch[0].seq == 3  # numbering goes on


async def test_a_run_ships_its_log_before_it_ends(service: tuple[WatchedBus, httpx.AsyncClient]) -> None:  # noqa: F811
    bus, _ = service
    run = request()
    await bus.publish(Topic.RUNS, Envelope.wrap(run, source="orchestrator-svc"))
    await wait_finished(bus, run.run_id)
    published = [e for e in bus.published[Topic.RUNS] if e.subject == str(run.run_id)]
    kinds = [e.type for e in published]
    assert "run.log" in kinds
    assert kinds.index("run.log") < kinds.index("run.finished")
    records = [r for e in events(bus, RunLogged, run.run_id) for r in e.payload_as(RunLogged).records]
    assert [r.seq for r in records] == list(range(len(records)))
    started = next(r for r in records if r.message == "run started")
    assert started.fields["pipeline"] == "shop-orders"
    assert all(r.level in {"debug", "info", "warning", "error", "critical"} for r in records)
    assert events(bus, RunFinished, run.run_id)
