"""Schema drift on real PostgreSQL and MariaDB: each kind of change is detected within one poll
interval as one ``schema.drift`` event, with the right kinds and classification."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.drift import DriftPlatform, SourceDb

pytestmark = pytest.mark.integration

POLL_SECONDS = 2

SETUP = [
    "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(50), amount INT, code VARCHAR(10), note TEXT)",
    "CREATE TABLE items (id INT PRIMARY KEY, label TEXT)",
    "INSERT INTO orders VALUES (1, 'ann', 10, '7', 'first'), (2, 'bob', 20, '8', 'second')",
]


@dataclass(frozen=True)
class Case:
    name: str
    sql: dict[str, str]  # per database kind
    kind: str
    table: str
    column: str | None
    breaking: bool
    type_change: str | None = None


def both(sql: str) -> dict[str, str]:
    return {"postgres": sql, "mariadb": sql}


CASES = [
    Case("add a column", both("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)"), "column_added", "orders",
         "coupon", False),
    Case("drop a column", both("ALTER TABLE orders DROP COLUMN note"), "column_removed", "orders", "note", True),
    Case("widen int to bigint", {"postgres": "ALTER TABLE orders ALTER COLUMN amount TYPE BIGINT",
                                 "mariadb": "ALTER TABLE orders MODIFY amount BIGINT"},
         "type_changed", "orders", "amount", False, "widening"),
    Case("narrow a varchar", {"postgres": "ALTER TABLE orders ALTER COLUMN customer TYPE VARCHAR(20)",
                              "mariadb": "ALTER TABLE orders MODIFY customer VARCHAR(20)"},
         "type_changed", "orders", "customer", True, "narrowing"),
    Case("an incompatible type", {"postgres": "ALTER TABLE orders ALTER COLUMN code TYPE INT USING code::int",
                                  "mariadb": "ALTER TABLE orders MODIFY code INT"},
         "type_changed", "orders", "code", True, "incompatible"),
    Case("rename a column", both("ALTER TABLE orders RENAME COLUMN note TO remark"), "column_renamed", "orders",
         "remark", True),
    Case("drop a table", both("DROP TABLE items"), "stream_removed", "items", None, True),
    Case("add a table", both("CREATE TABLE refunds (id INT PRIMARY KEY, order_id INT)"), "stream_added", "refunds",
         None, False),
]


async def watch(platform: DriftPlatform, db: SourceDb) -> str:
    """Create the connection, wait for its first snapshot; returns its id."""
    for statement in SETUP:
        db.execute(statement)
    created = await platform.api.post("/v1/connections", json={"name": f"src-{db.kind}", "type": db.connector_type,
                                                                "config": db.config})
    assert created.status_code == 201, created.text
    connection_id: str = created.json()["id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        history = (await platform.api.get(f"/v1/schemas/connections/{connection_id}/history")).json()
        if history:
            assert history[0]["version"] == 1
            assert history[0]["changes"] is None
            return connection_id
        await asyncio.sleep(0.2)
    pytest.fail("the connection's first snapshot never came")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_change_is_detected_within_one_poll_as_one_drift_event(
    case: Case, source_db: SourceDb, drift_platform: DriftPlatform
) -> None:
    platform = drift_platform
    connection_id = await watch(platform, source_db)
    patched = await platform.api.patch(f"/v1/schemas/connections/{connection_id}",
                                       json={"poll_interval_seconds": 5})
    assert patched.status_code == 200, patched.text
    await asyncio.sleep(0.5)  # the poll the new interval starts with
    source_db.execute(case.sql[source_db.kind])
    altered = time.monotonic()
    await platform.until(lambda: bool(platform.events("schema.drift")), within=5 + 2)
    assert time.monotonic() - altered <= 5 + 1
    await asyncio.sleep(0.5 + 2 * 0.2)  # nothing more arrives: one event per change set
    [event] = platform.events("schema.drift")
    data: dict[str, Any] = event.data
    [change] = data["changes"]
    assert (change["kind"], change["stream"], change["column"], change["breaking"]) == (
        case.kind, source_db.stream(case.table), case.column, case.breaking)
    assert change["type_change"] == case.type_change
    if case.kind == "column_renamed":
        assert (change["before"], change["after"], change["probable"]) == ("note", "remark", True)

    found = await platform.api.get(f"/v1/drift/{data['drift_id']}")
    assert found.status_code == 200
    assert found.json()["changes"] == data["changes"]
    listed = await platform.api.get("/v1/drift", params={"connection_id": connection_id, "kind": case.kind,
                                                          "breaking": str(case.breaking).lower()})
    assert [d["id"] for d in listed.json()] == [data["drift_id"]]
    other_kind = "default_changed"
    assert (await platform.api.get("/v1/drift", params={"kind": other_kind})).json() == []
    history = (await platform.api.get(f"/v1/schemas/connections/{connection_id}/history")).json()
    assert [h["version"] for h in history] == [2, 1]
    assert history[0]["changes"] == data["changes"]
