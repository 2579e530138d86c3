"""Incremental reads through HubSpot's search API, sliced by the cursor itself.

The search API returns at most 10,000 results per query (``after`` past that is refused) and
pages by offset, so a record that changes while we page shifts every later page. Each query
here therefore starts at the last cursor value read (``GTE``, the ids already read at that
value skipped) and reads one page: a slice of the time range that never comes near the
window, and that a concurrent update cannot shift. Only a full page of one single value
falls back to offset paging within that value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from tidemark.connectors.rest.http import RestClient
from tidemark.errors import FailureKind, SourceError

WINDOW = 10_000
PAGE = 200  # the most one search request returns
Value = int | Decimal


def _query(client: RestClient, obj: str, filters: list[dict[str, str]], sort: str, properties: list[str],
           after: int | None = None) -> Any:
    body: dict[str, Any] = {"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": sort,
                            "direction": "ASCENDING"}], "properties": properties, "limit": PAGE}
    if after:
        body["after"] = str(after)
    return client.json("POST", f"/crm/v3/objects/{obj}/search", what=f"search HubSpot {obj}", json=body)


def search_records(client: RestClient, obj: str, prop: str, properties: list[str],
                   lower: tuple[str, Value] | None, upper: Value | None,
                   value: Callable[[dict[str, Any]], Value | None]) -> Iterator[dict[str, Any]]:
    """Records with ``lower <op> prop < upper`` in ``prop`` order, each once; records without
    a value of ``prop`` are never returned (the search API cannot order them)."""
    op, low = (">=", None) if lower is None else lower
    seen_at_low: set[str] = set()
    while True:
        filters = [{"propertyName": prop, "operator": "HAS_PROPERTY"}] if low is None else [
            {"propertyName": prop, "operator": "GTE" if op == ">=" else "GT", "value": str(low)}]
        if upper is not None:
            filters.append({"propertyName": prop, "operator": "LT", "value": str(upper)})
        results = _query(client, obj, filters, prop, properties).get("results", [])
        yield from (r for r in results if r["id"] not in seen_at_low)
        if len(results) < PAGE:
            return
        first, last = value(results[0]), value(results[-1])
        if last is None:
            raise SourceError(f"HubSpot search returned {obj} records without {prop} although it was asked for "
                              "records that have it", FailureKind.TERMINAL)
        if first == last:
            yield from _one_value(client, obj, prop, properties, last, seen_at_low | {r["id"] for r in results})
            op, low, seen_at_low = ">", last, set()
        else:
            op, low = ">=", last
            seen_at_low = {r["id"] for r in results if value(r) == last}


def _one_value(client: RestClient, obj: str, prop: str, properties: list[str], at: Value,
               seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every record whose ``prop`` equals ``at``, by offset (their order cannot shift: an update
    moves a record out of the value, never within it)."""
    after = 0
    filters = [{"propertyName": prop, "operator": "EQ", "value": str(at)}]
    while True:
        if after + PAGE > WINDOW:
            raise SourceError(
                f"more than {WINDOW:,} HubSpot {obj} records share one value of {prop} ({at}), and HubSpot's search "
                f"cannot page past {WINDOW:,} results: read this stream with full refresh or another cursor",
                FailureKind.CONFIG)
        page = _query(client, obj, filters, "hs_object_id", properties, after)
        results = page.get("results", [])
        yield from (r for r in results if r["id"] not in seen)
        following = page.get("paging", {}).get("next", {}).get("after")
        if not following or not results:
            return
        after = int(following)
