"""Pipeline dependencies: upstreams on create/update, cycles, delete, the graph, and the runs that
``run.finished`` events trigger downstream (fed through the orchestrator's MemoryBus)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.pipelines import Pipelines
from tidemark.bus import MemoryBus
from tidemark.events import Envelope, RunError, RunFinished, RunRequested, RunStatus, Topic
from tidemark_orchestrator import logic, repository

pytestmark = pytest.mark.unit


@pytest.fixture
def client(pipelines: Pipelines) -> httpx.AsyncClient:
    return pipelines.orchestrator


async def make(p: Pipelines, name: str, *upstreams: str) -> str:
    """A pipeline of the shop's orders, writing its own tables (``<name>_orders``)."""
    body = {"name": name, "connection_id": p.shop_id, "streams": [{"name": "main.orders"}],
            "destination": {"table_prefix": f"{name}_"}, "upstreams": list(upstreams)}
    created = await p.orchestrator.post("/v1/pipelines", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def trigger(p: Pipelines, pid: str) -> str:
    queued = await p.orchestrator.post(f"/v1/pipelines/{pid}/runs")
    assert queued.status_code == 202, queued.text
    return str(queued.json()["run_id"])


def ended(pid: str, run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> RunFinished:
    error = None if status is RunStatus.SUCCEEDED else RunError(message="source went away", kind="transient")
    return RunFinished(run_id=uuid.UUID(run_id), pipeline_id=uuid.UUID(pid), status=status, error=error)


async def deliver(bus: MemoryBus, event: RunFinished | Envelope) -> None:
    envelope = event if isinstance(event, Envelope) else Envelope.wrap(event, source="ingest-svc")
    await bus.publish(Topic.RUNS, envelope)
    await bus.drain()


async def runs(p: Pipelines, pid: str) -> list[dict[str, Any]]:
    listed = await p.orchestrator.get(f"/v1/pipelines/{pid}/runs")
    assert listed.status_code == 200, listed.text
    return list(reversed(listed.json()))  # oldest first


async def dependency_requests(bus: MemoryBus, expected: int) -> list[str]:
    """Names of the pipelines ``run.requested`` (trigger ``dependency``) was published for, once the
    outbox relay has published ``expected`` of them."""
    names: list[str] = []
    for _ in range(100):
        events = [e.payload_as(RunRequested) for e in bus.published[Topic.RUNS] if e.type == "run.requested"]
        names = [e.pipeline.name for e in events if e.trigger == "dependency"]
        if len(names) >= expected:
            break
        await asyncio.sleep(0.05)
    return names


async def test_upstreams_are_given_by_id_or_name_stored_as_ids_and_unknown_ones_are_422_at_their_index(
    pipelines: Pipelines, client: httpx.AsyncClient
) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b")
    c = await make(pipelines, "c", "a", b)
    assert (await client.get(f"/v1/pipelines/{c}")).json()["upstreams"] == [a, b]

    unknown = await client.patch(f"/v1/pipelines/{c}", json={"upstreams": ["a", "nope", str(uuid.uuid4())]})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in unknown.json()["errors"]] == ["upstreams.1", "upstreams.2"]
    assert "'nope'" in unknown.json()["errors"][0]["message"]
    # Nothing changed.
    assert (await client.get(f"/v1/pipelines/{c}")).json()["upstreams"] == [a, b]

    before = (await client.get(f"/v1/pipelines/{c}")).json()["updated_at"]
    dropped = await client.patch(f"/v1/pipelines/{c}", json={"upstreams": []})
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["upstreams"] == []
    assert dropped.json()["updated_at"] > before
    assert (await client.patch(f"/v1/pipelines/{c}", json={"upstreams": None})).status_code == 422


async def test_a_pipeline_waiting_for_itself_or_closing_a_cycle_is_422_naming_the_cycle(
    pipelines: Pipelines, client: httpx.AsyncClient
) -> None:
    a = await make(pipelines, "a")
    await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "b")

    itself = await client.patch(f"/v1/pipelines/{a}", json={"upstreams": ["a"]})
    assert itself.status_code == 422
    assert [e["field"] for e in itself.json()["errors"]] == ["upstreams"]
    assert "a → a" in itself.json()["detail"]

    cycle = await client.patch(f"/v1/pipelines/{a}", json={"upstreams": ["c"]})
    assert cycle.status_code == 422
    assert [e["field"] for e in cycle.json()["errors"]] == ["upstreams"]
    assert "a → b → c → a" in cycle.json()["detail"]
    assert (await client.get(f"/v1/pipelines/{a}")).json()["upstreams"] == []
    # A new pipeline cannot close a cycle (it has no downstreams yet), but a changed one can't either.
    assert (await client.patch(f"/v1/pipelines/{c}", json={"upstreams": ["a", "b"]})).status_code == 200


async def test_deleting_a_pipeline_others_wait_for_is_409_naming_them(
    pipelines: Pipelines, client: httpx.AsyncClient
) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "a")

    refused = await client.delete(f"/v1/pipelines/{a}")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["downstreams"] == ["b", "c"]
    assert "b, c" in refused.json()["detail"]
    assert (await client.get(f"/v1/pipelines/{a}")).status_code == 200

    # A downstream goes with its edges; once nobody waits for `a`, it can go too.
    assert (await client.delete(f"/v1/pipelines/{b}")).status_code == 204
    assert (await client.delete(f"/v1/pipelines/{a}")).json()["downstreams"] == ["c"]
    assert (await client.patch(f"/v1/pipelines/{c}", json={"upstreams": []})).status_code == 200
    assert (await client.delete(f"/v1/pipelines/{a}")).status_code == 204


async def test_the_graph_shows_upstreams_and_downstreams_to_any_depth(
    pipelines: Pipelines, client: httpx.AsyncClient
) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "a")
    d = await make(pipelines, "d", "b", "c")
    e = await make(pipelines, "e", "d")

    graph = (await client.get(f"/v1/pipelines/{d}/graph")).json()
    assert (graph["id"], graph["name"]) == (d, "d")

    def shape(nodes: list[dict[str, Any]]) -> list[Any]:
        return [(n["name"], n["depth"], shape(n["children"])) for n in nodes]

    assert shape(graph["upstreams"]) == [("b", 1, [("a", 2, [])]), ("c", 1, [("a", 2, [])])]
    assert shape(graph["downstreams"]) == [("e", 1, [])]
    assert [n["id"] for n in graph["upstreams"]] == [b, c]
    assert graph["downstreams"][0]["id"] == e

    top = (await client.get(f"/v1/pipelines/{a}/graph")).json()
    assert top["upstreams"] == []
    assert shape(top["downstreams"]) == [("b", 1, [("d", 2, [("e", 3, [])])]), ("c", 1, [("d", 2, [("e", 3, [])])])]
    assert (await client.get(f"/v1/pipelines/{uuid.uuid4()}/graph")).status_code == 404


async def test_a_chain_runs_each_pipeline_after_its_upstream_succeeds(pipelines: Pipelines) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "b")

    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a)))
    [b_run] = await runs(pipelines, b)
    assert (b_run["trigger"], b_run["status"]) == ("dependency", "queued")
    assert await runs(pipelines, c) == []

    await deliver(pipelines.bus, ended(b, b_run["run_id"]))
    [c_run] = await runs(pipelines, c)
    assert c_run["trigger"] == "dependency"
    assert await dependency_requests(pipelines.bus, 2) == ["b", "c"]
    # The end of the chain ending triggers nothing more.
    await deliver(pipelines.bus, ended(c, c_run["run_id"]))
    assert [len(await runs(pipelines, pid)) for pid in (a, b, c)] == [1, 1, 1]


async def test_a_diamond_runs_the_join_once_after_both_sides(pipelines: Pipelines) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "a")
    d = await make(pipelines, "d", "b", "c")

    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a)))
    [b_run], [c_run] = await runs(pipelines, b), await runs(pipelines, c)
    await deliver(pipelines.bus, ended(b, b_run["run_id"]))
    assert await runs(pipelines, d) == [], "d waits for c too"
    await deliver(pipelines.bus, ended(c, c_run["run_id"]))
    [d_run] = await runs(pipelines, d)
    assert d_run["trigger"] == "dependency"
    assert sorted(await dependency_requests(pipelines.bus, 3)) == ["b", "c", "d"]


async def test_a_failed_upstream_blocks_its_downstream_and_says_so_until_it_succeeds(
    pipelines: Pipelines, client: httpx.AsyncClient
) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "a")
    d = await make(pipelines, "d", "b", "c")
    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a)))
    [b_run], [c_run] = await runs(pipelines, b), await runs(pipelines, c)

    await deliver(pipelines.bus, ended(b, b_run["run_id"], RunStatus.FAILED))
    await deliver(pipelines.bus, ended(c, c_run["run_id"]))
    assert await runs(pipelines, d) == []
    [blocked] = (await client.get(f"/v1/pipelines/{d}")).json()["blocked_by"]
    assert (blocked["upstream_id"], blocked["upstream_name"], blocked["run_id"], blocked["status"]) == (
        b, "b", b_run["run_id"], "failed")

    # b succeeds on a manual retry: d is unblocked and runs, once.
    await deliver(pipelines.bus, ended(b, await trigger(pipelines, b)))
    [d_run] = await runs(pipelines, d)
    assert d_run["trigger"] == "dependency"
    assert (await client.get(f"/v1/pipelines/{d}")).json()["blocked_by"] == []


async def test_a_partially_succeeded_upstream_blocks_too(pipelines: Pipelines, client: httpx.AsyncClient) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a), RunStatus.PARTIALLY_SUCCEEDED))
    assert await runs(pipelines, b) == []
    [blocked] = (await client.get(f"/v1/pipelines/{b}")).json()["blocked_by"]
    assert (blocked["upstream_name"], blocked["status"]) == ("a", "partially_succeeded")


async def test_a_redelivered_or_duplicated_run_end_triggers_the_downstream_once(pipelines: Pipelines) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    a_run = await trigger(pipelines, a)
    finished = Envelope.wrap(ended(a, a_run), source="ingest-svc")
    await deliver(pipelines.bus, finished)
    [b_run] = await runs(pipelines, b)
    await deliver(pipelines.bus, ended(b, b_run["run_id"]))  # b is idle again: a duplicate could start it

    await deliver(pipelines.bus, finished)  # redelivered: the same event id
    await deliver(pipelines.bus, ended(a, a_run))  # another replica's copy: a new event id, the same run
    assert len(await runs(pipelines, b)) == 1

    # A replica that read the run as still active, and so got past the status check, before the
    # first one committed: the edges already saw this run, so nothing is requested.
    runtime = pipelines.orchestrator_app.state.runtimes["orchestrator"]
    async with runtime.transaction() as session:
        run = await repository.get_run(session, uuid.UUID(a_run))
        assert run is not None
        assert await logic.request_dependency_runs(runtime, session, run) == []
    assert len(await runs(pipelines, b)) == 1
    assert await dependency_requests(pipelines.bus, 1) == ["b"]


async def test_a_downstream_busy_when_its_upstreams_succeed_runs_when_its_own_run_ends(
    pipelines: Pipelines,
) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    manual = await trigger(pipelines, b)  # b is running when a succeeds
    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a)))
    assert [r["trigger"] for r in await runs(pipelines, b)] == ["manual"]

    await deliver(pipelines.bus, ended(b, manual))
    assert [r["trigger"] for r in await runs(pipelines, b)] == ["manual", "dependency"]


async def test_a_manual_run_of_the_downstream_counts_as_its_last_run(pipelines: Pipelines) -> None:
    a = await make(pipelines, "a")
    b = await make(pipelines, "b", "a")
    c = await make(pipelines, "c", "a", "b")
    await deliver(pipelines.bus, ended(a, await trigger(pipelines, a)))
    [b_run] = await runs(pipelines, b)
    # c runs by hand after a succeeded: a's success is used up by that run.
    await deliver(pipelines.bus, ended(c, await trigger(pipelines, c)))
    await deliver(pipelines.bus, ended(b, b_run["run_id"]))
    assert [r["trigger"] for r in await runs(pipelines, c)] == ["manual"], "a has not succeeded since c's run"
