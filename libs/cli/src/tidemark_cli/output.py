"""Readable tables and records by default, JSON with --json.

Nothing is ever cut short: a cell too wide for the terminal wraps onto more lines
within its column, so an error message is always shown whole.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import click

GAP = "  "
PROSE_WIDTH = 24  # a column wider than this whose cells have spaces (messages) wraps first
MIN_WIDTH = 8  # a column is never squeezed below this, nor below its header


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """``data`` (a list of objects, or one object) as JSON or as a table of ``columns``."""
    if as_json:
        emit_json(data)
        return
    rows = data if isinstance(data, list) else [data]
    click.echo(table([times(r) for r in rows], columns))


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
          width: int | None = None, headers: Mapping[str, str] | None = None, null: str = "-") -> str:
    """Rows as aligned columns within ``width`` (the terminal's by default); long cells wrap.
    ``headers`` overrides a column's title (the upper-cased name by default); ``null`` shows None."""
    if not rows:
        return "(none)"
    cols = list(columns or rows[0].keys())
    titles = [(headers or {}).get(c, c.upper()) for c in cols]
    cells = [[cell(r.get(c), null) for c in cols] for r in rows]
    natural = [max(len(t), *(_longest_line(row[i]) for row in cells)) for i, t in enumerate(titles)]
    # Headers stay whole; cells wrap down to MIN_WIDTH.
    minimum = [min(n, max(len(t), MIN_WIDTH)) for n, t in zip(natural, titles, strict=True)]
    prose = [natural[i] > PROSE_WIDTH and any(" " in row[i] for row in cells) for i in range(len(cols))]
    widths = _fit(natural, minimum, (width or terminal_width()) - len(GAP) * (len(cols) - 1), prose)
    lines = _render_row(titles, widths)
    for row in cells:
        lines += _render_row(row, widths)
    return "\n".join(lines)


def record(fields: Sequence[tuple[str, Any]], width: int | None = None) -> str:
    """``label: value`` lines, labels aligned; long values wrap under themselves."""
    label_width = max(len(label) for label, _ in fields) + 1
    room = max(20, (width or terminal_width()) - label_width - 1)
    lines: list[str] = []
    for label, value in fields:
        text = cell(value)
        # One long token (a path, a URI) stays on one line, so it can be copied whole; the terminal folds it.
        wrapped = _wrap(text, room) if any(c.isspace() for c in text) else [text]
        lines.append(f"{(label + ':').ljust(label_width)} {wrapped[0]}".rstrip())
        lines += [" " * (label_width + 1) + more for more in wrapped[1:]]
    return "\n".join(lines)


TIME_FIELDS = {"last_updated", "scheduled_for"}


def times(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with its timestamps (``*_at`` fields and the like) shortened by :func:`when`."""
    return {k: when(v) if k.endswith("_at") or k in TIME_FIELDS else v for k, v in row.items()}


def when(value: Any) -> Any:
    """An ISO 8601 timestamp from the API as ``2026-12-05 18:35:21`` (UTC, to the second) for a table cell;
    anything else unchanged."""
    if not isinstance(value, str):
        return value
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any, null: str = "-") -> str:
    if value is None:
        return null
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(cell(v, null) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _fit(natural: list[int], minimum: list[int], room: int, prose: list[bool]) -> list[int]:
    """Shrink columns until the row fits ``room``: prose (cells with spaces, such as messages) first, as it
    wraps at word boundaries; ids and timestamps only when that is not enough. Never below ``minimum``."""
    widths = list(natural)
    for candidates in ([i for i, p in enumerate(prose) if p], list(range(len(widths)))):
        while sum(widths) > room:
            shrinkable = [i for i in candidates if widths[i] > minimum[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
    return widths  # may still exceed room: then the terminal wraps, but no text is lost


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, break_long_words=True, break_on_hyphens=False,
                               replace_whitespace=False, drop_whitespace=True) or [""]
    return lines


def _render_row(values: Sequence[str], widths: Sequence[int]) -> list[str]:
    wrapped = [_wrap(v, w) for v, w in zip(values, widths, strict=True)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = [(w[i] if i < len(w) else "").ljust(width) for w, width in zip(wrapped, widths, strict=True)]
        lines.append(GAP.join(parts).rstrip())
    return lines
