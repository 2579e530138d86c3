"""The runs list: filters, sorts, keyset (cursor) pagination and totals per status.

A cursor is the sort key of the last row of a page, so the next page is one index range however
deep it is, and runs that arrive meanwhile neither repeat nor shift a page. Every sort ends with
``run_id``, which makes the key unique. NULLs (a run not started yet has no ``started_at``) come
last in either direction.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.errors import ConfigError
from tidemark.events import RunStatus
from tidemark_jobs.models import RunTotal, RunView

SelectT = TypeVar("SelectT", bound=sa.Select[*tuple[Any, ...]])

Sort = Literal["newest", "oldest", "scheduled_for", "-scheduled_for", "started_at", "-started_at",
               "finished_at", "-finished_at"]
SORTS: tuple[Sort, ...] = get_args(Sort)

_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "list_order": RunView.list_order.expression,
    "scheduled_for": RunView.scheduled_for.expression,
    "started_at": RunView.started_at.expression,
    "finished_at": RunView.finished_at.expression,
}


def _keys(sort: Sort) -> list[tuple[str, bool]]:
    """(column, descending) pairs, ``run_id`` last."""
    if sort in ("newest", "oldest"):
        return [("list_order", sort == "newest"), ("run_id", sort == "newest")]
    descending = sort.startswith("-")
    return [(sort.lstrip("-"), descending), ("run_id", descending)]


@dataclass(frozen=True)
class RunFilter:
    statuses: Sequence[RunStatus] = ()
    pipeline_ids: Sequence[uuid.UUID] = ()
    connection_ids: Sequence[uuid.UUID] = ()
    triggers: Sequence[str] = ()
    text: str | None = None
    ranges: dict[str, tuple[datetime | None, datetime | None]] = field(default_factory=dict)

    def without_status(self) -> RunFilter:
        return RunFilter((), self.pipeline_ids, self.connection_ids, self.triggers, self.text, self.ranges)

    def kept_in_totals(self) -> bool:
        """True when only statuses and triggers are filtered: the counts ``run_totals`` keeps."""
        return not (self.pipeline_ids or self.connection_ids or self.text
                    or any(lo or hi for lo, hi in self.ranges.values()))

    def apply(self, query: SelectT) -> SelectT:
        if self.statuses:
            query = query.where(RunView.status.in_([s.value for s in self.statuses]))
        if self.pipeline_ids:
            query = query.where(RunView.pipeline_id.in_(self.pipeline_ids))
        if self.connection_ids:
            query = query.where(RunView.connection_id.in_(self.connection_ids))
        if self.triggers:
            query = query.where(RunView.trigger.in_(self.triggers))
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(RunView.pipeline_name.ilike(f"%{escaped}%", escape="\\"))
        for name, (low, high) in self.ranges.items():
            column = _COLUMNS[name]
            if low is not None:
                query = query.where(column >= low)
            if high is not None:
                query = query.where(column < high)
        return query


def _column(name: str) -> sa.ColumnElement[Any]:
    return RunView.run_id.expression if name == "run_id" else _COLUMNS[name]


_NOT_NULL = {"list_order", "run_id"}


def _after(keys: list[tuple[str, bool]], values: list[Any]) -> sa.ColumnElement[bool]:
    """Rows after the cursor in the sort order (NULLs last in either direction)."""
    if all(name in _NOT_NULL for name, _ in keys):
        # One row comparison: PostgreSQL reads it as a single index range.
        columns = [_column(n) for n, _ in keys]
        key = sa.tuple_(*(sa.literal(v, c.type) for c, v in zip(columns, values, strict=True)))
        row = sa.tuple_(*columns)
        return row < key if keys[0][1] else row > key
    alternatives: list[sa.ColumnElement[bool]] = []
    equal: list[sa.ColumnElement[bool]] = []
    for (name, descending), value in zip(keys, values, strict=True):
        column = _column(name)
        if value is not None:
            beyond = column < value if descending else column > value
            alternatives.append(sa.and_(*equal, sa.or_(beyond, column.is_(None))))
            equal.append(column == value)
        else:
            equal.append(column.is_(None))
    return sa.or_(*alternatives)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode_value(name: str, raw: Any) -> Any:
    if raw is None:
        return None
    if name == "run_id":
        return uuid.UUID(str(raw))
    if name == "list_order":
        if not isinstance(raw, int) or isinstance(raw, bool) or not -(2**63) <= raw < 2**63:
            raise ValueError("not a 64-bit integer")
        return raw
    moment = datetime.fromisoformat(raw["t"])
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def encode_cursor(sort: Sort, row: RunView) -> str:
    values = [_encode_value(getattr(row, name)) for name, _ in _keys(sort)]
    raw = json.dumps([sort, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> list[Any]:
    problem = ConfigError(
        "cursor: not a cursor of this list; pass `next_cursor` from the previous page, with the same sort",
        errors=[{"field": "cursor", "message": "invalid cursor", "type": "invalid_cursor"}],
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        keys = _keys(sort)
        if not isinstance(decoded, list) or decoded[0] != sort or len(decoded) != len(keys) + 1:
            raise problem
        return [_decode_value(name, raw) for (name, _), raw in zip(keys, decoded[1:], strict=True)]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, binascii.Error) as exc:
        raise problem from exc


async def page(session: AsyncSession, where: RunFilter, sort: Sort, limit: int,
               cursor: str | None) -> tuple[list[RunView], str | None]:
    keys = _keys(sort)
    query = where.apply(sa.select(RunView))
    if cursor:
        query = query.where(_after(keys, decode_cursor(sort, cursor)))
    order = []
    for name, descending in keys:
        column = _column(name)
        ordered = column.desc() if descending else column.asc()
        # NULLS LAST only where NULLs can be: on the others the clause would keep PostgreSQL from
        # reading the index backwards (it does not use the NOT NULL to see the orders agree).
        order.append(ordered if name in _NOT_NULL else ordered.nulls_last())
    rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(sort, rows[-1]) if more and rows else None


async def totals(session: AsyncSession, where: RunFilter) -> dict[str, int]:
    """Runs per status for the filter's other conditions (its statuses left out, so the counts say
    how many of each there are to choose from); every status is a key."""
    counts = dict.fromkeys((s.value for s in RunStatus), 0)
    if where.kept_in_totals():
        # Kept by the projection: these counts never scan the runs.
        kept = sa.select(RunTotal.status, RunTotal.runs)
        if where.triggers:
            kept = kept.where(RunTotal.trigger.in_(where.triggers))
        rows = (await session.execute(kept)).all()
    else:
        query = where.without_status().apply(sa.select(RunView.status, sa.func.count()).group_by(RunView.status))
        rows = (await session.execute(query)).all()
    for status, runs in rows:
        counts[status] += int(runs)
    return counts
