"""The catalog diff: every change kind schema-svc reports, as the source's discover shows it."""

from __future__ import annotations

import pytest

from tidemark.connectors import Catalog, ColumnInfo, StreamInfo
from tidemark.connectors.diff import diff_catalogs

pytestmark = pytest.mark.unit


def col(name: str, type_: str = "int32", source: str = "integer", nullable: bool = True,
        default: str | None = None) -> ColumnInfo:
    return ColumnInfo(name=name, type=type_, source_type=source, nullable=nullable, default=default)


ORDERS = StreamInfo(name="public.orders", primary_key=["id"], columns=[
    col("id", nullable=False), col("customer", "string", "character varying(50)"),
    col("amount", "decimal128(10, 2)", "numeric(10,2)"), col("qty"),
])


def changed(**replace: ColumnInfo | None) -> Catalog:
    columns = [replace.get(c.name, c) if c.name in replace else c for c in ORDERS.columns]
    return Catalog(streams=[ORDERS.model_copy(update={"columns": [c for c in columns if c is not None]})])


BEFORE = Catalog(streams=[ORDERS])


def test_the_same_catalog_has_no_changes() -> None:
    assert diff_catalogs(BEFORE, BEFORE.model_copy(deep=True)) == []


def test_tables_added_and_dropped() -> None:
    other = StreamInfo(name="public.refunds", columns=[col("id")])
    added = diff_catalogs(BEFORE, Catalog(streams=[ORDERS, other]))
    assert [(c.kind, c.stream, c.breaking) for c in added] == [("stream_added", "public.refunds", False)]
    dropped = diff_catalogs(BEFORE, Catalog(streams=[]))
    assert [(c.kind, c.stream, c.breaking) for c in dropped] == [("stream_removed", "public.orders", True)]


def test_columns_added_and_dropped() -> None:
    added = diff_catalogs(BEFORE, Catalog(streams=[ORDERS.model_copy(
        update={"columns": [*ORDERS.columns, col("note", "string", "text")]})]))
    assert [(c.kind, c.column, c.after, c.breaking) for c in added] == [("column_added", "note", "text", False)]
    dropped = diff_catalogs(BEFORE, changed(qty=None))
    assert [(c.kind, c.column, c.breaking) for c in dropped] == [("column_removed", "qty", True)]


def test_a_column_of_the_same_type_at_the_same_position_is_a_probable_rename() -> None:
    columns = [*ORDERS.columns[:3], col("quantity")]
    changes = diff_catalogs(BEFORE, Catalog(streams=[ORDERS.model_copy(update={"columns": columns})]))
    assert [(c.kind, c.before, c.after, c.probable, c.breaking) for c in changes] == [
        ("column_renamed", "qty", "quantity", True, True)]


def test_a_dropped_column_and_one_of_another_type_are_not_a_rename() -> None:
    columns = [*ORDERS.columns[:3], col("quantity", "string", "text")]
    changes = diff_catalogs(BEFORE, Catalog(streams=[ORDERS.model_copy(update={"columns": columns})]))
    assert sorted(c.kind for c in changes) == ["column_added", "column_removed"]


@pytest.mark.parametrize(("column", "after", "expected"), [
    ("qty", col("qty", "int64", "bigint"), "widening"),
    ("id", col("id", "int16", "smallint", nullable=False), "narrowing"),
    ("customer", col("customer", "string", "character varying(20)"), "narrowing"),
    ("customer", col("customer", "string", "character varying(200)"), "widening"),
    ("customer", col("customer", "string", "text"), "widening"),
    ("amount", col("amount", "decimal128(12, 2)", "numeric(12,2)"), "widening"),
    ("amount", col("amount", "decimal128(12, 4)", "numeric(12,4)"), "incompatible"),
    ("customer", col("customer", "int32", "integer"), "incompatible"),
])
def test_type_changes_are_widening_narrowing_or_incompatible(column: str, after: ColumnInfo, expected: str) -> None:
    [change] = diff_catalogs(BEFORE, changed(**{column: after}))
    assert (change.kind, change.column, change.type_change) == ("type_changed", column, expected)
    assert change.breaking is (expected != "widening")


def test_nullability_default_and_key_changes() -> None:
    changes = diff_catalogs(BEFORE, changed(qty=col("qty", nullable=False, default="0")))
    assert [(c.kind, c.before, c.after) for c in changes] == [
        ("nullability_changed", "null", "not null"), ("default_changed", None, "0")]
    rekeyed = diff_catalogs(BEFORE, Catalog(streams=[ORDERS.model_copy(update={"primary_key": ["id", "qty"]})]))
    assert [(c.kind, c.before, c.after, c.breaking) for c in rekeyed] == [("primary_key_changed", "id", "id,qty", True)]
