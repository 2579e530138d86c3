"""Two orchestrator replicas on one PostgreSQL database, both handling run endings at once:
a downstream is requested exactly once, never twice (the same ending seen by both) and never
zero times (its two upstreams ending on different replicas at the same moment)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fixtures.pipelines import API_TOKEN, orchestrator_settings
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import Envelope, RunFinished, RunStatus, Topic
from tidemark.settings import DatabaseSettings
from tidemark_orchestrator.app import definition
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration
ROUNDS = 5


async def create(client: httpx.AsyncClient, name: str, *upstreams: str) -> str:
    body = {"name": name, "connection_id": str(uuid.uuid4()), "streams": [{"name": "sales.orders"}],
            "destination": {"namespace": name.replace("-", "_")}, "upstreams": list(upstreams)}
    created = await client.post("/v1/pipelines?validate=false", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def trigger(client: httpx.AsyncClient, pid: str) -> str:
    return str((await client.post(f"/v1/pipelines/{pid}/runs")).json()["run_id"])


def finished(pid: str, run_id: str) -> Envelope:
    event = RunFinished(run_id=uuid.UUID(run_id), pipeline_id=uuid.UUID(pid), status=RunStatus.SUCCEEDED)
    return Envelope.wrap(event, source="ingest-svc")


async def at_once(deliveries: list[tuple[MemoryBus, Envelope]]) -> None:
    await asyncio.gather(*(bus.publish(Topic.RUNS, envelope) for bus, envelope in deliveries))
    await asyncio.gather(*(bus.drain() for bus, _ in deliveries))


async def test_replicas_request_each_dependency_run_exactly_once(pg_database: Callable[[], str],
                                                                 tmp_path: Path) -> None:
    settings = orchestrator_settings(tmp_path).model_copy(update={"database": DatabaseSettings(url=pg_database())})
    buses = MemoryBus(), MemoryBus()
    async with httpx.AsyncClient() as unused:
        first = build_app([(definition(unused), settings)], title="a", bus=buses[0], migrate=True)
        second = build_app([(definition(unused), settings)], title="b", bus=buses[1])
        async with running(first, API_TOKEN) as api, running(second, API_TOKEN):
            for i in range(ROUNDS):
                a = await create(api, f"a-{i}")
                b = await create(api, f"b-{i}", f"a-{i}")
                c = await create(api, f"c-{i}", f"a-{i}")
                d = await create(api, f"d-{i}", f"b-{i}", f"c-{i}")
                # The same ending of a's run, handled by both replicas at once (two event ids).
                a_run = await trigger(api, a)
                await at_once([(buses[0], finished(a, a_run)), (buses[1], finished(a, a_run))])
                [b_run] = (await api.get(f"/v1/pipelines/{b}/runs")).json()
                [c_run] = (await api.get(f"/v1/pipelines/{c}/runs")).json()
                # b and c end at the same moment, one on each replica: d still runs, once.
                await at_once([(buses[0], finished(b, b_run["run_id"])), (buses[1], finished(c, c_run["run_id"]))])
                d_runs = (await api.get(f"/v1/pipelines/{d}/runs")).json()
                assert [r["trigger"] for r in d_runs] == ["dependency"], (i, d_runs)


async def test_replicas_never_start_two_runs_of_one_pipeline(pg_database: Callable[[], str], tmp_path: Path) -> None:
    settings = orchestrator_settings(tmp_path).model_copy(update={"database": DatabaseSettings(url=pg_database())})
    async with httpx.AsyncClient() as unused:
        first = build_app([(definition(unused), settings)], title="a", bus=MemoryBus(), migrate=True)
        second = build_app([(definition(unused), settings)], title="b", bus=MemoryBus())
        async with running(first, API_TOKEN) as a, running(second, API_TOKEN) as b:
            for i in range(ROUNDS):
                pid = await create(a, f"p-{i}")
                answers = await asyncio.gather(*(api.post(f"/v1/pipelines/{pid}/runs") for api in (a, b, a, b)))
                # overlap: queue: one run starts, one waits for it, the others are refused.
                assert sorted(r.status_code for r in answers) == [202, 202, 409, 409], [r.text for r in answers]
                accepted = [r.json() for r in answers if r.status_code == 202]
                assert sorted(r["admitted_at"] is not None for r in accepted) == [False, True], accepted
