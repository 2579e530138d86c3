"""How runs and tables read in a terminal: a key/value block, then the parts as tables."""

from __future__ import annotations

from typing import Any

from tidemark_cli.output import record, table, when

# `pipelines run --wait` exit statuses: a script tells a partial load from a failed one.
EXIT_CODES = {"succeeded": 0, "partially_succeeded": 3}
EXIT_FAILED = 1


def run_exit_code(status: str) -> int:
    return EXIT_CODES.get(status, EXIT_FAILED)


def _named(name: Any, ident: Any) -> str:
    return f"{name} ({ident})" if name else str(ident)


def show_run(run: dict[str, Any], width: int | None = None) -> str:
    """A run as jobs-svc reports it (``/v1/runs/{id}``): the run, its streams, their warnings, then its
    timeline and attempts."""
    trigger = run.get("trigger") or "-"
    if run.get("attempt", 1) > 1:
        trigger += f" (attempt {run['attempt']})"
    facts: list[tuple[str, Any]] = [
        ("run", run.get("run_id")),
        ("pipeline", _named(run.get("pipeline_name"), run.get("pipeline_id"))),
        ("status", run.get("status")),
        ("trigger", trigger),
        ("requested", when(run.get("requested_at"))),
        ("started", when(run.get("started_at"))),
        ("finished", when(run.get("finished_at"))),
        ("rows", f"{run.get('rows_read', 0)} read, {run.get('rows_written', 0)} written"),
        ("worker", run.get("worker_ref")),
        ("error", _error(run.get("error_detail")) or run.get("error")),
        ("hint", (run.get("error_detail") or {}).get("hint")),
        ("waiting", run.get("wait_reason")),
        ("retry of", run.get("retry_of")),
    ]
    if run.get("scheduled_for"):
        facts.insert(4, ("scheduled for", when(run["scheduled_for"])))
    parts = [record([(k, v) for k, v in facts if v is not None or k in _ALWAYS], width)]
    streams = run.get("streams") or []
    if streams:
        rows = [{
            "stream": s.get("stream"), "table": s.get("table"), "status": s.get("status"),
            "rows_read": s.get("rows_read"), "rows_written": s.get("rows_written"),
            "seconds": round(float(s.get("duration_seconds") or 0), 1),
            "cursor": _cursor(s), "error": _error(s.get("error")),
        } for s in streams]
        if all(r["cursor"] is None for r in rows):  # full refreshes keep no cursor: no empty column
            rows = [{k: v for k, v in r.items() if k != "cursor"} for r in rows]
        parts.append("Streams\n" + table(rows, width=width))
    warnings = [{"stream": s.get("stream"), **w} for s in streams for w in (s.get("warnings") or [])]
    if warnings:
        parts.append("Warnings\n" + table(warnings, ["stream", "kind", "column", "count", "message"], width=width))
    # The run's story last: a reader (or a script) finds the outcome, facts then streams, first.
    timeline = run.get("timeline") or []
    if timeline:
        steps = [{"at": when(t.get("at")), "status": t.get("status"), "reason": t.get("reason")} for t in timeline]
        parts.append("Timeline\n" + table(steps, width=width))
    attempts = run.get("attempts") or []
    if attempts:
        tries = [{"attempt": a.get("attempt"), "run": a.get("run_id"), "status": a.get("status"),
                  "error": a.get("error")} for a in attempts]
        parts.append("Attempts\n" + table(tries, width=width))
    return "\n\n".join(parts)


_ALWAYS = {"run", "pipeline", "status", "trigger", "requested", "started", "finished", "rows", "error"}


def _cursor(stream: dict[str, Any]) -> str | None:
    before, after = stream.get("cursor_before"), stream.get("cursor_after")
    if before is None and after is None:
        return None
    return f"{before or '-'} -> {after or '-'}"


def log_line(item: dict[str, Any]) -> str:
    """One worker log record as a line: time, level, message, then its fields as key=value."""
    extra = " ".join(f"{k}={v}" for k, v in (item.get("fields") or {}).items())
    return f"{when(item.get('at'))} {str(item.get('level', '')).upper():<7} {item.get('message')}" + \
        (f"  {extra}" if extra else "")


def _error(error: Any) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        kind = error.get("kind")
        message = str(error.get("message") or "")
        return f"{message} [{kind}]" if kind else message
    return str(error)


def show_table(detail: dict[str, Any], width: int | None = None) -> str:
    """A table as ``/v1/tables/{table}`` reports it: facts, source, state, columns, snapshots."""
    source = detail.get("source") or {}
    cursor = detail.get("cursor")
    parts = [record([
        ("table", detail.get("identifier")),
        ("location", detail.get("location")),
        ("metadata", detail.get("metadata_location")),
        ("rows", detail.get("row_count")),
        ("snapshot", detail.get("current_snapshot_id")),
        ("last updated", when(detail.get("last_updated"))),
        ("pipeline", _named(source.get("pipeline_name"), source.get("pipeline_id")) if source else None),
        ("connection", source.get("connection_id")),
        ("source stream", source.get("stream")),
        ("cursor", f"{cursor.get('field')} = {cursor.get('value')}" if cursor else None),
        ("primary key", detail.get("identifier_fields") or None),
        ("partition", detail.get("partition") or None),
    ], width)]
    parts.append("Columns\n" + table(detail.get("columns") or [], ["name", "type", "required", "identifier"],
                                     width=width, headers={"identifier": "KEY"}))
    snapshots = [{
        "snapshot_id": s.get("snapshot_id"), "committed_at": when(s.get("committed_at")),
        "operation": s.get("operation"), "run_id": s.get("run_id"), "added": s.get("added_rows"),
        "deleted": s.get("deleted_rows"), "rows": s.get("total_rows"),
    } for s in detail.get("snapshots") or []]
    parts.append("Snapshots (newest first)\n" + table(snapshots, width=width))
    return "\n\n".join(parts)
