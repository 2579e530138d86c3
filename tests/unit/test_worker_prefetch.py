"""Reading ahead in a thread keeps the order, raises the reader's error in the consumer, and stops
the reader when the consumer stops."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from tidemark.logs import JsonFormatter, log_context
from tidemark_ingest.worker.prefetch import prefetched

pytestmark = pytest.mark.unit


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))


def test_a_reader_error_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def broken() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("connection dropped")

    items = prefetched(broken())
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(ValueError, match="connection dropped"):
        next(items)


def test_stopping_early_closes_the_reader() -> None:
    closed = threading.Event()
    produced = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    items = prefetched(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert len(produced) < 10


def test_the_reader_thread_logs_with_the_run_id() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())  # formats in the emitting thread, as the worker's handler does
    log = logging.getLogger("tidemark.test.prefetch")
    log.addHandler(handler)

    def reader() -> Iterator[int]:
        log.warning("zero dates read as NULL")
        yield 1

    try:
        with log_context(run_id="run-42"):
            assert list(prefetched(reader())) == [1]
    finally:
        log.removeHandler(handler)
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["run_id"] == "run-42"
