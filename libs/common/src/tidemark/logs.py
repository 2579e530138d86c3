"""Structured logging with context (service, run id) carried in contextvars."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("tidemark_log_context", default={})  # noqa: B039 - never mutated, only replaced


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Attach ``values`` (e.g. ``run_id``) to every log record emitted inside the block."""
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """The values :func:`log_context` attached here (a copy)."""
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = {**_context.get(), **(getattr(record, "fields", None) or {})}
        suffix = " ".join(f"{k}={v}" for k, v in ctx.items())
        base = super().format(record)
        return f"{base} {suffix}" if suffix else base


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance and reconnect at INFO; that is noise for operators.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO; our own clients log what matters with context.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    pyiceberg_io = logging.getLogger("pyiceberg.io")
    if _FILE_IO_LOADED not in pyiceberg_io.filters:
        pyiceberg_io.addFilter(_FILE_IO_LOADED)


class _OnceAtDebug(logging.Filter):
    """Lets the first record whose message starts with ``prefix`` through once, at DEBUG; drops the rest.

    pyiceberg logs "Loaded FileIO: ..." at INFO each time it builds a FileIO object, which it
    does for every table load, create and commit: six times for one full-refresh stream. Building
    one is cheap here (they share their filesystems, see ``tidemark.lakehouse.storage``), so the
    line says nothing an operator needs more than once.
    """

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self._prefix):
            return True
        message = record.getMessage()
        with self._lock:
            if message in self._seen:
                return False
            self._seen.add(message)
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILE_IO_LOADED = _OnceAtDebug("Loaded FileIO")


def fields(**values: Any) -> dict[str, Any]:
    """``log.info("...", extra=fields(run_id=...))`` adds structured fields to one record."""
    return {"fields": values}
