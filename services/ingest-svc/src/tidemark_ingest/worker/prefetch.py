"""Read the source in a thread while the writer encodes: the two overlap instead of taking turns.

Both sides spend their time in C++ that releases the GIL (the driver decoding COPY
data into Arrow, Parquet encoding and compression), so a second thread lets the
database, the reader and the writer each keep a core busy. The queue between them
is short, so memory stays bounded by a few batches.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterator[T], depth: int = 2, poll_seconds: float = 0.1) -> Iterator[T]:
    """Yield ``items`` in order, produced ahead by a background thread (at most ``depth`` waiting).

    An error in the producer is raised here, in the consumer. When the consumer stops early
    (an error, or ``close()``), the producer stops at its next item and closes ``items``.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=poll_seconds)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    # The producer logs as the consumer would: with its run id and stream (log context is a contextvar).
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(produce,), name="tidemark-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
