"""Profile: what orchestrator-svc spends on each ``run.started`` and ``run.finished`` it consumes.

An in-process orchestrator (its scheduler off) on a fresh PostgreSQL database with the in-memory
bus. ``PROFILE_RUNS`` pipelines (default 2,000) each get one admitted run; then, per phase, one event
per run is handed to the orchestrator's consumer and the phase's growth of
``tidemark_db_statements_total`` and of this process's CPU time (``time.process_time``: the
orchestrator's Python, not PostgreSQL's) is divided by the events:

- ``started`` / ``finished``: every event queued at once, so the consumer takes them as a Kafka
  fetch returns them (up to 100 together);
- ``finished_one_by_one``: each published and handled before the next (a quiet consumer), on
  another set of runs.

Pipelines have been maintained already (``maintained_at`` set), so a success queues no maintenance:
the steady state, not a pipeline's first run. Run: ``uv run python bench/run_events.py``.
The last line is ``BENCH runs=N ...`` with ``<phase>_statements_per_event`` and ``<phase>_cpu_ms_per_event``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tidemark.api.app import build_app  # noqa: E402
from tidemark.bus import MemoryBus  # noqa: E402
from tidemark.db import utcnow  # noqa: E402
from tidemark.db.engine import DB_STATEMENTS  # noqa: E402
from tidemark.events import Envelope, EventPayload, RunFinished, RunStarted, RunStatus, Topic  # noqa: E402
from tidemark.ids import new_id  # noqa: E402
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings  # noqa: E402
from tidemark_orchestrator.app import definition  # noqa: E402
from tidemark_orchestrator.deps import OrchestratorRuntime  # noqa: E402
from tidemark_orchestrator.models import Pipeline, Run  # noqa: E402
from tidemark_orchestrator.settings import OrchestratorSettings  # noqa: E402
from tidemark_testing.apps import running  # noqa: E402
from tidemark_testing.postgres import admin_dsn, create_database, drop_database  # noqa: E402

TOKEN = "profile-token"  # noqa: S105 - a throw-away in-process app's token


def log(message: str) -> None:
    print(f"[run-events] {message}", flush=True)


async def add_runs(runtime: OrchestratorRuntime, count: int) -> list[Run]:
    """``count`` pipelines without a schedule, each with one run holding a slot (as admission leaves it)."""
    now = utcnow()
    pipelines = [{"id": new_id(), "name": f"profile-{uuid.uuid4().hex[:12]}", "connection_id": uuid.uuid4(),
                  "streams": [{"name": "public.orders"}], "destination": {"namespace": "profile"},
                  "status": "active", "overlap": "queue", "catchup": "last", "maintained_at": now,
                  "created_at": now, "updated_at": now} for _ in range(count)]
    runs = [{"id": new_id(), "pipeline_id": p["id"], "trigger": "manual", "status": RunStatus.QUEUED.value,
             "attempt": 1, "requested_at": now, "admitted_at": now, "connection_id": p["connection_id"]}
            for p in pipelines]
    async with runtime.transaction() as session:
        await session.execute(sa.insert(Pipeline), pipelines)
        await session.execute(sa.insert(Run), runs)
    async with runtime.sessions() as session:
        return list((await session.scalars(sa.select(Run).where(Run.id.in_([r["id"] for r in runs])))).all())


async def measure(bus: MemoryBus, events: Sequence[EventPayload], together: bool) -> tuple[float, float]:
    """(statements, CPU seconds) the orchestrator spent on ``events``."""
    statements, cpu = DB_STATEMENTS._value.get(), time.process_time()
    for payload in events:
        await bus.publish(Topic.RUNS, Envelope.wrap(payload, source="ingest-svc"))
        if not together:
            await bus.drain()
    await bus.drain()
    return DB_STATEMENTS._value.get() - statements, time.process_time() - cpu


async def check(runtime: OrchestratorRuntime, runs: Sequence[Run], status: RunStatus) -> None:
    async with runtime.sessions() as session:
        found = (await session.scalars(sa.select(Run.status).where(Run.id.in_([r.id for r in runs])))).all()
    wrong = [s for s in found if s != status.value]
    if wrong or len(found) != len(runs):
        raise SystemExit(f"expected {len(runs)} runs {status.value}, found {len(found)} with {len(wrong)} others")


async def profile(database: str, count: int, home: Path) -> dict[str, float]:
    settings = OrchestratorSettings(
        database=DatabaseSettings(url=database), auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        platform=PlatformSettings(home=home, internal_token=SecretStr("profile-internal")), bus="memory",
        scheduler_enabled=False, outbox_poll_seconds=60)
    bus = MemoryBus()
    app = build_app([(definition(None), settings)], title="orchestrator", bus=bus, migrate=True)
    results: dict[str, float] = {}
    async with running(app, TOKEN):
        runtime: OrchestratorRuntime = app.state.runtimes["orchestrator"]
        batch, single = await add_runs(runtime, count), await add_runs(runtime, count)
        phases: list[tuple[str, Sequence[Run], Callable[[Run], EventPayload], bool, RunStatus]] = [
            ("started", batch, lambda r: RunStarted(run_id=r.id, pipeline_id=r.pipeline_id, launcher="local",
                                                    worker_ref="1"), True, RunStatus.RUNNING),
            ("finished", batch, lambda r: RunFinished(run_id=r.id, pipeline_id=r.pipeline_id,
                                                      status=RunStatus.SUCCEEDED), True, RunStatus.SUCCEEDED),
            ("finished_one_by_one", single, lambda r: RunFinished(run_id=r.id, pipeline_id=r.pipeline_id,
                                                                  status=RunStatus.SUCCEEDED), False,
             RunStatus.SUCCEEDED),
        ]
        for name, runs, event, together, status in phases:
            statements, cpu = await measure(bus, [event(r) for r in runs], together)
            await check(runtime, runs, status)
            results[f"{name}_statements_per_event"] = statements / len(runs)
            results[f"{name}_cpu_ms_per_event"] = 1000 * cpu / len(runs)
            log(f"{name}: {len(runs)} events, {statements:.0f} statements, {cpu:.2f} s CPU")
    return results


def main() -> None:
    count = int(os.environ.get("PROFILE_RUNS", "2000"))
    with admin_dsn() as admin, tempfile.TemporaryDirectory(prefix="tidemark-run-events-") as tmp:
        database = create_database(admin, "tidemark_profile")
        try:
            results = asyncio.run(profile(database, count, Path(tmp)))
        finally:
            drop_database(admin, database)
    print(f"BENCH runs={count} " + " ".join(f"{k}={v:.3f}" for k, v in results.items()), flush=True)


if __name__ == "__main__":
    main()
