"""``run.started`` and ``run.finished`` fetched together are applied as a set, in a few statements,
with exactly the effect of applying them one at a time in delivery order (fed through the
orchestrator's MemoryBus, which hands a consumer what is queued together, as a Kafka fetch does)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.pipelines import Pipelines
from tidemark.db.engine import DB_STATEMENTS
from tidemark.events import Envelope, EventPayload, RunError, RunFinished, RunStarted, RunStatus, Topic

pytestmark = pytest.mark.unit


async def make(p: Pipelines, name: str, *upstreams: str) -> str:
    body = {"name": name, "connection_id": p.shop_id, "streams": [{"name": "main.orders"}],
            "destination": {"table_prefix": f"{name}_"}, "upstreams": list(upstreams),
            "retries": {"max_attempts": 3, "initial_delay_seconds": 60, "max_delay_seconds": 600}}
    created = await p.orchestrator.post("/v1/pipelines", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def trigger(p: Pipelines, pid: str) -> uuid.UUID:
    queued = await p.orchestrator.post(f"/v1/pipelines/{pid}/runs")
    assert queued.status_code == 202, queued.text
    return uuid.UUID(queued.json()["run_id"])


def started(pid: str, run_id: uuid.UUID) -> RunStarted:
    return RunStarted(run_id=run_id, pipeline_id=uuid.UUID(pid), launcher="local", worker_ref="1")


def finished(pid: str, run_id: uuid.UUID, status: RunStatus = RunStatus.SUCCEEDED, kind: str = "transient"
             ) -> RunFinished:
    error = None if status is RunStatus.SUCCEEDED else RunError(message=f"failed ({kind})", kind=kind)
    return RunFinished(run_id=run_id, pipeline_id=uuid.UUID(pid), status=status, error=error)


async def deliver(p: Pipelines, events: list[EventPayload], together: bool) -> None:
    """Publish ``events`` in order: all queued before the consumer runs (``together``), or each
    handled before the next is published."""
    for event in events:
        await p.bus.publish(Topic.RUNS, Envelope.wrap(event, source="ingest-svc"))
        if not together:
            await p.bus.drain()
    await p.bus.drain()


async def runs(p: Pipelines, pid: str) -> list[dict[str, Any]]:
    listed = await p.orchestrator.get(f"/v1/pipelines/{pid}/runs")
    assert listed.status_code == 200, listed.text
    return list(reversed(listed.json()))  # oldest first


def shown(run: dict[str, Any]) -> tuple[Any, ...]:
    return run["trigger"], run["status"], run["attempt"], run["started_at"] is not None, run["error"]


@pytest.mark.parametrize("together", [True, False], ids=["together", "one_at_a_time"])
async def test_a_batch_of_run_events_has_the_effect_of_each_in_delivery_order(pipelines: Pipelines,
                                                                               together: bool) -> None:
    ids = {name: await make(pipelines, name) for name in ("a", "late", "twice", "flaky", "config", "done")}
    ids["down"] = await make(pipelines, "down", "a")
    run = {name: await trigger(pipelines, ids[name]) for name in ("a", "late", "twice", "flaky", "config", "done")}
    await deliver(pipelines, [finished(ids["done"], run["done"], RunStatus.FAILED, "config")], together=False)

    await deliver(pipelines, [
        started(ids["a"], run["a"]), finished(ids["a"], run["a"]),
        # A start delivered after the run's end changes nothing.
        finished(ids["late"], run["late"]), started(ids["late"], run["late"]),
        # A second ending of a run changes nothing: the first one is kept.
        finished(ids["twice"], run["twice"]), finished(ids["twice"], run["twice"], RunStatus.FAILED),
        started(ids["flaky"], run["flaky"]), finished(ids["flaky"], run["flaky"], RunStatus.FAILED),
        finished(ids["config"], run["config"], RunStatus.FAILED, "config"),
        # An ended run is never moved again, not even back to running.
        started(ids["done"], run["done"]), finished(ids["done"], run["done"]),
    ], together)

    assert [shown(r) for r in await runs(pipelines, ids["a"])] == [("manual", "succeeded", 1, True, None)]
    # a's success completes its downstream's upstreams: one dependency run.
    assert [shown(r) for r in await runs(pipelines, ids["down"])] == [("dependency", "queued", 1, False, None)]
    assert [shown(r) for r in await runs(pipelines, ids["late"])] == [("manual", "succeeded", 1, False, None)]
    assert [shown(r) for r in await runs(pipelines, ids["twice"])] == [("manual", "succeeded", 1, False, None)]
    flaky = await runs(pipelines, ids["flaky"])
    assert [shown(r) for r in flaky] == [("manual", "failed", 1, True, "failed (transient)"),
                                         ("retry", "queued", 2, False, None)]
    assert flaky[1]["retry_of"] == flaky[0]["run_id"]
    assert flaky[1]["not_before"] is not None
    assert [shown(r) for r in await runs(pipelines, ids["config"])] == [("manual", "failed", 1, False,
                                                                         "failed (config)")]
    assert [shown(r) for r in await runs(pipelines, ids["done"])] == [("manual", "failed", 1, False,
                                                                       "failed (config)")]


async def test_run_events_fetched_together_cost_fewer_statements_than_events(pipelines: Pipelines) -> None:
    ids = [await make(pipelines, f"p{i}") for i in range(30)]
    run_ids = [await trigger(pipelines, pid) for pid in ids]
    events: list[EventPayload] = [started(pid, r) for pid, r in zip(ids, run_ids, strict=True)]
    events += [finished(pid, r) for pid, r in zip(ids, run_ids, strict=True)]

    before = DB_STATEMENTS._value.get()
    await deliver(pipelines, events, together=True)
    spent = DB_STATEMENTS._value.get() - before

    # One at a time, each event costs several statements (about 7 per ending); as a set, a handful
    # for the whole batch. The bound leaves room for the outbox relay polling meanwhile.
    assert spent < len(events) / 2, f"{spent} statements for {len(events)} events"
    for pid in ids:
        assert [shown(r) for r in await runs(pipelines, pid)] == [("manual", "succeeded", 1, True, None)]
