"""The typed runtime: a service's state exists once it started, handlers get a context that emits
in the event's own transaction, and routes find their service's runtime by name."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import AlertSent, Envelope, RunError, RunFinished, RunStatus, Topic
from tidemark.service import ServiceRuntime
from tidemark.settings import AuthSettings, DatabaseSettings
from tidemark_impact.app import DEFINITION as IMPACT
from tidemark_impact.settings import ImpactSettings
from tidemark_ingest.app import DEFINITION as INGEST
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import running

pytestmark = pytest.mark.unit
TOKEN = "unit-token"


async def test_state_exists_only_once_the_service_started(tmp_path: Path) -> None:
    settings = IngestSettings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/i.db"), bus="memory")
    runtime = ServiceRuntime(INGEST, settings, bus=MemoryBus())
    with pytest.raises(RuntimeError, match="ingest has not started"):
        _ = runtime.state
    await runtime.start(migrate=True)
    try:
        assert runtime.state.launcher.name == "local"
        assert runtime.settings.launcher == "local"  # typed: IngestSettings, no cast
    finally:
        await runtime.stop()


async def test_a_handler_emits_through_its_context_in_the_events_transaction(tmp_path: Path) -> None:
    bus = MemoryBus()
    settings = ImpactSettings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/impact.db"),
                              auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory")
    app = build_app([(IMPACT, settings)], title="impact", bus=bus, migrate=True)
    async with running(app, TOKEN) as client:
        run_id = uuid.uuid4()
        failed = RunFinished(run_id=run_id, pipeline_id=uuid.uuid4(), status=RunStatus.FAILED,
                             error=RunError(message="source unreachable", kind="transient"))
        envelope = Envelope.wrap(failed, source="test")
        await bus.publish(Topic.RUNS, envelope)
        await bus.publish(Topic.RUNS, envelope)  # redelivered: applied once
        await bus.drain()
        alerts = (await client.get("/v1/alerts")).json()
        assert [a["subject_id"] for a in alerts] == [str(run_id)]
        for _ in range(100):  # the outbox relay publishes what the handler emitted, soon after the commit
            if bus.published[Topic.ALERTS]:
                break
            await asyncio.sleep(0.05)
        [sent] = bus.published[Topic.ALERTS]
        assert sent.payload_as(AlertSent).subject_id == str(run_id)
