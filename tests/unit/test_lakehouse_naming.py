"""Table names: every source name becomes a name every engine and every storage path accepts."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tidemark.lakehouse.naming import safe_part, table_collisions, table_name

pytestmark = pytest.mark.unit

SAFE = re.compile(r"[a-z0-9_]+")


def test_plain_names_keep_their_shape_and_lose_their_case() -> None:
    assert table_name("public.orders") == "orders"
    assert table_name("main.customers") == "customers"
    assert table_name("dbo.Customers") == "customers"
    assert table_name("public.Account") == "account"  # Salesforce objects read as users expect
    assert table_name("sales.orders") == "sales__orders"
    assert table_name("sales.orders", "raw_") == "raw_sales__orders"


def test_same_table_in_two_schemas_gets_two_names() -> None:
    assert table_name("public.y") != table_name("sales.y")
    assert table_collisions(["public.y", "sales.y"]) == []


@pytest.mark.parametrize(
    "stream",
    ['s.x"; DROP TABLE t; --', "s.a/b", "s.has space", "s.Bestellungen-Österreich", "s.数据", "s.v1.2 data",
     "s.2 data", "s.." + "x" * 300, 'we"ird.t'],
)
def test_awkward_names_become_safe_and_stable(stream: str) -> None:
    name = table_name(stream)
    assert SAFE.fullmatch(name), name
    assert len(name) <= 200
    assert table_name(stream) == name


def test_a_dotted_name_does_not_collide_with_its_last_part() -> None:
    # `v1.2 data` once became the table `2 data` and overwrote a table really named so.
    assert table_collisions(["db.v1.2 data", "db.2 data"]) == []
    assert table_name("db.v1.2 data") != table_name("db.2 data")


def test_punctuation_variants_stay_apart() -> None:
    names = {safe_part(n) for n in ["a-b", "a b", "a.b", "a_b", "a__b", "A-B"]}
    assert len(names) == 6


def test_transliteration_keeps_names_readable() -> None:
    assert safe_part("Österreich").startswith("osterreich_")
    assert safe_part("数据").startswith("t_")


def test_the_join_separator_never_hides_a_schema() -> None:
    # `a.b` is `a__b`; a table literally named `a__b` in a default schema must not take that name.
    assert table_collisions(["x.a.b", "public.a__b", "a.b"]) == []


def test_collisions_name_both_streams() -> None:
    assert table_collisions(["public.y", "main.y", "dbo.Y", "y"]) == [
        ("public.y", "main.y", "y"),
        ("public.y", "dbo.Y", "y"),
        ("public.y", "y", "y"),
    ]


def test_names_differing_in_case_alone_share_a_name_and_are_refused_together() -> None:
    assert table_name("s.Orders") == table_name("s.orders") == "s__orders"
    assert table_collisions(["s.Orders", "s.orders"]) == [("s.Orders", "s.orders", "s__orders")]


def test_a_plain_name_never_looks_like_a_hashed_one() -> None:
    # `Orders-2` becomes `orders_2_<hash>`: a table literally named so must not take that name.
    hashed = table_name("public.Orders-2")
    assert re.fullmatch(r"orders_2_[0-9a-f]{8}", hashed)
    assert table_name(f"public.{hashed}") != hashed
    assert table_collisions(["public.Orders-2", f"public.{hashed}"]) == []
    assert table_name("s.orders_2024") == "s__orders_2024"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_two_different_names_never_share_a_table(a: str, b: str) -> None:
    # Outside default schemas and case alone (documented: both share a name and are refused together).
    first, second = f"s.{a}", f"s.{b}"
    assume(first.lower() != second.lower())
    assert table_name(first) != table_name(second)
    assert SAFE.fullmatch(table_name(first))


def test_the_documented_examples_hold() -> None:
    # docs/destinations.md, "Table names", shows these exact names.
    assert table_name("sales.v1.2 data") == "sales__v1_2_data_98e928c0"
    assert table_name("dbo.Orders") == "orders"
    assert table_name("sales.Bestellungen-Österreich") == "sales__bestellungen_osterreich_f6dadfb5"
    assert table_name('sales.x"; DROP TABLE t; --') == "sales__x_drop_table_t_b4717908"
    assert table_name("shop.orders") == "shop__orders"
