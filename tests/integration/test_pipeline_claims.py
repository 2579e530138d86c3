"""Two orchestrator replicas on one PostgreSQL database cannot both claim a table: the collision
check and the insert run under an advisory lock (an in-process lock cannot see the other replica)."""

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
from tidemark.settings import DatabaseSettings
from tidemark_orchestrator.app import definition
from tidemark_testing.apps import running

pytestmark = pytest.mark.integration


async def test_replicas_cannot_both_claim_a_table(pg_database: Callable[[], str], tmp_path: Path) -> None:
    settings = orchestrator_settings(tmp_path).model_copy(update={"database": DatabaseSettings(url=pg_database())})
    async with httpx.AsyncClient() as unused:
        first = build_app([(definition(unused), settings)], title="a", bus=MemoryBus(), migrate=True)
        second = build_app([(definition(unused), settings)], title="b", bus=MemoryBus())
        async with running(first, API_TOKEN) as a, running(second, API_TOKEN) as b:
            bodies = [{"name": f"racer-{i}", "connection_id": str(uuid.uuid4()),
                       "streams": [{"name": "sales.orders"}], "destination": {"namespace": "lake"}}
                      for i in range(6)]
            answers = await asyncio.gather(*(
                (a if i % 2 else b).post("/v1/pipelines?validate=false", json=body)
                for i, body in enumerate(bodies)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409, 409], [r.text for r in answers]
