"""The worker's log records, shipped to jobs-svc as ``run.log`` events.

A worker may run as a Kubernetes Job that shares no disk with any service, but it always writes
its run's events into ingest-svc's outbox; its log travels the same way. A logging handler keeps
the records (secrets scrubbed, each cut to a bounded size) in a bounded buffer; the heartbeat and
the run's end put them into the outbox as ``run.log`` batches. When the buffer is full, new
records are counted as dropped instead, and the count travels with the next batch. jobs-svc keeps
a bounded number per run. The process's own stderr log stays as it was (the launcher's log).
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.bus import Outbox
from tidemark.events import LogRecord, RunLogged
from tidemark.logs import current_context
from tidemark.redact import REDACT, Redactor

BUFFER = 1000
BATCH = 200
MESSAGE_CHARS = 4000
FIELD_CHARS = 500
# Not shipped: who logs is known from the event itself.
_CONTEXT_KEPT_OUT = {"run_id"}


class LogShipper(logging.Handler):
    def __init__(self, run_id: uuid.UUID, redact: Redactor = REDACT, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.run_id = run_id
        self._redact = redact
        self._records: collections.deque[LogRecord] = collections.deque()
        self._seq = 0
        self._dropped = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            shipped = self._convert(record)
        except Exception:  # a record that cannot be shipped must not break the run
            self.handleError(record)
            return
        with self._guard:
            if len(self._records) >= BUFFER:
                self._dropped += 1
                return
            self._records.append(shipped.model_copy(update={"seq": self._seq}))
            self._seq += 1

    def _convert(self, record: logging.LogRecord) -> LogRecord:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        values = {**current_context(), **(getattr(record, "fields", None) or {})}
        extra = {k: self._value(v) for k, v in values.items() if k not in _CONTEXT_KEPT_OUT}
        text = self._redact(message)
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 1] + "…"
        return LogRecord(seq=0, at=datetime.fromtimestamp(record.created, UTC), level=record.levelname.lower(),
                         logger=record.name[:128], message=text, fields=extra)

    def _value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        return self._redact(str(value))[:FIELD_CHARS]

    def take(self, limit: int = BATCH) -> tuple[list[LogRecord], int]:
        with self._guard:
            batch = [self._records.popleft() for _ in range(min(limit, len(self._records)))]
            dropped, self._dropped = self._dropped, 0
        return batch, dropped

    async def ship(self, session: AsyncSession, outbox: Outbox, pipeline_id: uuid.UUID,
                   everything: bool = False) -> None:
        """Put buffered records into the outbox in ``session``'s transaction: one batch, or all."""
        while True:
            records, dropped = self.take()
            if records or dropped:
                await outbox.add(session, RunLogged(run_id=self.run_id, pipeline_id=pipeline_id,
                                                    records=records, dropped=dropped))
            if not everything or not records:
                return

    def __enter__(self) -> LogShipper:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger().removeHandler(self)
