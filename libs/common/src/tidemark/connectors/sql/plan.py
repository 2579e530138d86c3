"""Read plans and how a dialect renders them as parameterised SQL."""

from __future__ import annotations

import abc
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tidemark.connectors.base import KeyRange
from tidemark.connectors.sql.cursor import CursorFilter, coerce_cursor
from tidemark.connectors.sql.tables import SqlColumn, SqlTable
from tidemark.errors import FailureKind, SourceError


@dataclass(frozen=True)
class ReadPlan:
    """Everything one read needs: the table, selected columns, the rows to read and their order."""

    table: SqlTable
    columns: tuple[SqlColumn, ...]
    cursor: CursorFilter | None = None
    order_by: SqlColumn | None = None
    key_range: KeyRange | None = None

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])


class Dialect(abc.ABC):
    """How one database spells identifiers, placeholders and bound values."""

    @abc.abstractmethod
    def quote(self, identifier: str) -> str: ...

    def table_sql(self, table: SqlTable) -> str:
        return f"{self.quote(table.namespace)}.{self.quote(table.name)}"

    def placeholder(self, column: SqlColumn, index: int) -> str:
        """The SQL for the ``index``-th bound value compared with ``column``."""
        return "%s"

    def bind(self, value: Any, column: SqlColumn) -> Any:
        """The driver value for a typed Python ``value`` compared with ``column``."""
        return value

    def select_expr(self, column: SqlColumn) -> str:
        quoted = self.quote(column.name)
        if column.select == "{}":
            return quoted
        return f"{column.select.format(quoted)} AS {quoted}"

    def limit(self, sql: str, rows: int) -> str:
        return f"{sql} LIMIT {int(rows)}"

    def render(self, plan: ReadPlan) -> tuple[str, list[Any]]:
        """``SELECT`` for ``plan``; identifiers quoted, every value a bound parameter."""
        params: list[Any] = []
        where: list[str] = []

        def bound(column: SqlColumn, value: Any) -> str:
            params.append(self.bind(value, column))
            return self.placeholder(column, len(params) - 1)

        if plan.cursor is not None:
            c = plan.cursor
            where.append(f"{self.quote(c.column.name)} {c.op} {bound(c.column, c.value)}")
        if plan.key_range is not None:
            key = plan.table.column(plan.key_range.column)
            if key is None:
                raise SourceError(f"stream {plan.table.stream!r}: unknown key column {plan.key_range.column!r}",
                                  FailureKind.CONFIG)
            if plan.key_range.lower is not None:
                value = coerce_cursor(plan.key_range.lower, key.arrow_type)
                where.append(f"{self.quote(key.name)} >= {bound(key, value)}")
            if plan.key_range.upper is not None:
                value = coerce_cursor(plan.key_range.upper, key.arrow_type)
                where.append(f"{self.quote(key.name)} < {bound(key, value)}")
        # Identifiers are quoted by the dialect and values are parameters: nothing user-given is spliced.
        sql = f"SELECT {', '.join(self.select_expr(c) for c in plan.columns)} FROM {self.table_sql(plan.table)}"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        if plan.order_by is not None:
            # Qualified: a bare name would mean the select list's column of that name, which may be the
            # value read through a cast (a decimal as text sorts "10.00" before "9.00").
            sql += f" ORDER BY {self.table_sql(plan.table)}.{self.quote(plan.order_by.name)}"
        return sql, params


    def render_count(self, plan: ReadPlan) -> tuple[str, list[Any]]:
        """``SELECT count(*)`` of the rows ``plan`` reads (same filters and bound values, no order)."""
        sql, params = self.render(dataclasses.replace(plan, order_by=None))
        return f"SELECT count(*) FROM ({sql}) AS tidemark_count", params  # noqa: S608 - rendered above


def quote_with(identifier: str, open_: str, close: str) -> str:
    """Quote ``identifier`` by doubling the closing quote character inside it."""
    if "\x00" in identifier:
        raise SourceError("identifiers cannot contain NUL characters", FailureKind.CONFIG)
    return open_ + identifier.replace(close, close + close) + close


def integer_ranges(column: str, low: int, high: int, count: int) -> list[KeyRange]:
    """``count`` ranges of equal width over ``[low, high]``; the outer ones are open-ended so
    rows inserted beyond the extremes while reading are not lost."""
    step = max(1, -(-(high - low + 1) // count))
    bounds = [str(low + step * i) for i in range(1, count) if low + step * i <= high]
    edges: list[str | None] = [None, *bounds, None]
    return [KeyRange(column=column, lower=lo, upper=hi) for lo, hi in itertools.pairwise(edges)]
