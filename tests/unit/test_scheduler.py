"""The scheduler with a clock the test moves: upcoming runs, due ticks, catchup, pause/resume, changes.

The scheduler loop is off here; each test runs passes itself (``scheduler_pass``) at the instants it
chooses, against a real orchestrator app on SQLite. Events are read from the outbox, where the
scheduler writes them in the same transaction as the runs.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from tests.fixtures.pipelines import API_TOKEN, orchestrator_settings
from tests.fixtures.scheduling import START, Clock, Harness, harness, orchestrator_harness
from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import RunFinished, RunRequested, RunScheduled, RunStatus, RunUnscheduled
from tidemark_orchestrator.app import definition
from tidemark_orchestrator.models import Pipeline, Run
from tidemark_testing.apps import running

__all__ = ["harness"]  # the fixture

pytestmark = pytest.mark.unit


def at(hour: int, minute: int = 0) -> datetime:
    return START.replace(hour=hour, minute=minute)


# --- upcoming runs -------------------------------------------------------------------------------------


async def test_creating_a_scheduled_pipeline_stores_its_next_day_of_ticks_as_upcoming_runs(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    upcoming = await harness.runs(pid, RunStatus.SCHEDULED)
    # 24 h horizon from 09:40: 10:00 today … 09:00 tomorrow.
    assert [r.scheduled_for for r in upcoming] == [at(10) + timedelta(hours=h) for h in range(24)]
    assert {r.trigger for r in upcoming} == {"schedule"}
    announced = await harness.events(RunScheduled)
    assert [(e.run_id, e.scheduled_for) for e in announced] == [(r.id, r.scheduled_for) for r in upcoming]
    # A pass later adds nothing it already has; an hour later it tops up one more tick.
    assert (await harness.tick()).scheduled == []
    harness.clock.advance(hours=1)
    assert [r.scheduled_for for r in (await harness.tick()).scheduled] == [at(10) + timedelta(hours=24)]


async def test_a_frequent_schedule_stores_at_most_the_bound(harness: Harness) -> None:
    pid = await harness.create("* * * * *")
    assert len(await harness.runs(pid, RunStatus.SCHEDULED)) == 100


async def test_a_manual_pipeline_has_no_upcoming_runs(harness: Harness) -> None:
    pid = await harness.create(None)
    await harness.tick()
    assert await harness.runs(pid) == []


# --- due ticks ------------------------------------------------------------------------------------------


async def test_a_due_tick_is_queued_once_with_run_requested_carrying_the_same_run(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    first = (await harness.runs(pid))[0]
    harness.clock.now = at(10, 0)
    outcome = await harness.tick()
    assert [r.id for r in outcome.queued] == [first.id]
    assert (await harness.tick()).queued == []  # a second pass (or replica) does not queue it again
    [requested] = await harness.events(RunRequested)
    assert (requested.run_id, requested.trigger, requested.scheduled_for) == (first.id, "schedule", at(10))
    [queued] = await harness.runs(pid, RunStatus.QUEUED)
    assert queued.id == first.id


async def test_a_due_tick_waits_while_a_run_is_active_and_fires_when_it_ends(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    manual = await harness.client.post(f"/v1/pipelines/{pid}/runs")
    assert manual.status_code == 202
    harness.clock.now = at(10, 5)
    assert (await harness.tick()).queued == []
    waiting = (await harness.runs(pid, RunStatus.SCHEDULED))[0]
    assert waiting.scheduled_for == at(10)
    [active] = await harness.runs(pid, RunStatus.QUEUED)
    await harness.finish(active)
    harness.clock.now = at(10, 20)
    assert [r.id for r in (await harness.tick()).queued] == [waiting.id]


async def test_catchup_last_skips_older_waiting_ticks_with_a_reason(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    await harness.client.post(f"/v1/pipelines/{pid}/runs")
    harness.clock.now = at(12, 30)  # 10:00, 11:00 and 12:00 are due behind the active run
    outcome = await harness.tick()
    assert [r.scheduled_for for r in outcome.skipped] == [at(10), at(11)]
    assert outcome.queued == []
    cancelled = await harness.runs(pid, RunStatus.CANCELLED)
    assert all("superseded by the tick at 2026-12-07T12:00:00+00:00" in (r.error or "") for r in cancelled)
    ended = await harness.events(RunFinished)
    assert {e.run_id for e in ended} == {r.id for r in cancelled}
    assert {e.status for e in ended} == {RunStatus.CANCELLED}


async def test_catchup_all_fires_each_missed_tick_in_turn(harness: Harness) -> None:
    pid = await harness.create("0 * * * *", catchup="all")
    harness.clock.now = at(12, 30)  # the orchestrator was away from 10:00 to 12:30
    fired = []
    for _ in range(3):
        outcome = await harness.tick()
        assert len(outcome.queued) == 1
        fired.append(outcome.queued[0].scheduled_for)
        await harness.finish(outcome.queued[0])
    assert fired == [at(10), at(11), at(12)]
    assert (await harness.tick()).queued == []
    assert await harness.runs(pid, RunStatus.CANCELLED) == []


async def test_catchup_none_skips_ticks_missed_by_more_than_the_grace(harness: Harness) -> None:
    pid = await harness.create("0 * * * *", catchup="none")
    harness.clock.now = at(12, 0, ) + timedelta(seconds=30)  # 12:00 is 30 s late: within the 60 s grace
    outcome = await harness.tick()
    assert [r.scheduled_for for r in outcome.skipped] == [at(10), at(11)]
    assert [r.scheduled_for for r in outcome.queued] == [at(12)]
    assert pid


async def test_a_pass_fires_every_due_tick_in_statements_that_do_not_grow_with_pipelines(tmp_path: Path) -> None:
    """At the top of the minute every every-minute schedule is due at once: the pass queues them all
    set-based, in a few statements, not a handful per pipeline; each tick once, each admitted."""
    statements: dict[int, float] = {}
    for count in (5, 60):
        async with orchestrator_harness(tmp_path / str(count), max_scheduled_per_pipeline=3,
                                        max_active_runs=1000, max_active_runs_per_connection=1000) as h:
            ids = {await h.create("* * * * *") for _ in range(count)}
            h.clock.now = START.replace(minute=41)
            before = REGISTRY.get_sample_value("tidemark_db_statements_total") or 0.0
            outcome = await h.tick()
            statements[count] = (REGISTRY.get_sample_value("tidemark_db_statements_total") or 0.0) - before
            assert sorted(str(t.pipeline_id) for t in outcome.queued) == sorted(ids)
            assert {t.scheduled_for for t in outcome.queued} == {START.replace(minute=41)}
            requested = await h.events(RunRequested)
            assert sorted(e.run_id for e in requested) == sorted(t.id for t in outcome.queued)
            assert (await h.tick()).queued == []  # nothing fires twice
    # The outbox relay runs beside the pass (a few statements per batch it publishes): a margin for it.
    assert statements[60] <= statements[5] + 10, statements


async def test_upcoming_runs_are_topped_up_in_batches_and_no_tick_is_missed(tmp_path: Path) -> None:
    """Ticks fire on their own; the pipeline is looked at again when half its stored ticks fired."""
    async with orchestrator_harness(tmp_path, max_scheduled_per_pipeline=4) as h:
        pid = await h.create("* * * * *")
        fired = []
        for minute in range(41, 53):
            h.clock.now = START.replace(minute=minute)
            outcome = await h.tick()
            assert [t.scheduled_for for t in outcome.queued] == [h.clock.now]
            fired.append(outcome.queued[0])
            await h.finish(outcome.queued[0])
            upcoming = await h.runs(pid, RunStatus.SCHEDULED)
            assert 2 <= len(upcoming) <= 4
            assert [r.scheduled_for for r in upcoming] == [
                h.clock.now + timedelta(minutes=i + 1) for i in range(len(upcoming))]
        stored = await h.events(RunScheduled)
        assert len(stored) == len({e.scheduled_for for e in stored})  # each tick stored once
        assert len({t.id for t in fired}) == 12


# --- changes, pause, resume, delete ---------------------------------------------------------------------


async def test_changing_the_schedule_withdraws_the_old_upcoming_runs(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    old = await harness.runs(pid, RunStatus.SCHEDULED)
    changed = await harness.client.patch(f"/v1/pipelines/{pid}",
                                         json={"schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    new = await harness.runs(pid, RunStatus.SCHEDULED)
    assert [r.scheduled_for for r in new] == [datetime(2026, 12, 8, 1, 30, tzinfo=UTC)]  # 02:30 CET
    withdrawn = await harness.events(RunUnscheduled)
    assert {e.run_id for e in withdrawn} == {r.id for r in old}
    assert {e.reason for e in withdrawn} == {"schedule changed"}
    # Changing only catchup keeps the upcoming runs.
    await harness.client.patch(f"/v1/pipelines/{pid}", json={"catchup": "none"})
    assert [r.id for r in await harness.runs(pid, RunStatus.SCHEDULED)] == [r.id for r in new]
    cleared = await harness.client.patch(f"/v1/pipelines/{pid}", json={"schedule": None})
    assert cleared.json()["schedule"] is None
    assert await harness.runs(pid, RunStatus.SCHEDULED) == []


async def test_pause_withdraws_upcoming_runs_and_reports_the_active_one(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    manual = (await harness.client.post(f"/v1/pipelines/{pid}/runs")).json()
    paused = await harness.client.post(f"/v1/pipelines/{pid}/pause")
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["pipeline"]["status"] == "paused"
    assert len(body["unscheduled"]) == 24
    assert body["active_run"]["run_id"] == manual["run_id"]
    assert await harness.runs(pid, RunStatus.SCHEDULED) == []
    # Paused: the scheduler adds nothing; a manual trigger is refused; pausing again changes nothing.
    harness.clock.now = at(11, 30)
    assert (await harness.tick()).scheduled == []
    assert (await harness.client.post(f"/v1/pipelines/{pid}/runs")).status_code == 409
    again = (await harness.client.post(f"/v1/pipelines/{pid}/pause")).json()
    assert again["unscheduled"] == []


@pytest.mark.parametrize(("catchup", "queued", "waiting"), [("last", [13], []), ("all", [10], [11, 12, 13]),
                                                             ("none", [], [])])
async def test_resume_applies_catchup_to_ticks_missed_while_paused(
    harness: Harness, catchup: str, queued: list[int], waiting: list[int]
) -> None:
    pid = await harness.create("0 * * * *", catchup=catchup)
    await harness.client.post(f"/v1/pipelines/{pid}/pause")
    harness.clock.now = at(13, 30)  # 10:00 … 13:00 passed while paused
    resumed = await harness.client.post(f"/v1/pipelines/{pid}/resume")
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["pipeline"]["status"] == "active"
    assert [datetime.fromisoformat(r["scheduled_for"]).hour for r in body["queued"]] == queued
    assert [datetime.fromisoformat(r["scheduled_for"]).hour for r in body["waiting"]] == waiting
    assert body["upcoming"] == 24
    assert len(await harness.runs(pid, RunStatus.QUEUED)) == len(queued)  # resuming never floods


async def test_patch_status_pauses_and_resumes_like_the_endpoints(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    paused = await harness.client.patch(f"/v1/pipelines/{pid}", json={"status": "paused"})
    assert paused.json()["status"] == "paused"
    assert await harness.runs(pid, RunStatus.SCHEDULED) == []
    harness.clock.now = at(12, 10)
    resumed = await harness.client.patch(f"/v1/pipelines/{pid}", json={"status": "active"})
    assert resumed.json()["status"] == "active"
    assert [r.scheduled_for for r in await harness.runs(pid, RunStatus.QUEUED)] == [at(12)]


async def test_deleting_a_pipeline_withdraws_its_upcoming_runs(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    upcoming = await harness.runs(pid, RunStatus.SCHEDULED)
    assert (await harness.client.delete(f"/v1/pipelines/{pid}")).status_code == 204
    withdrawn = await harness.events(RunUnscheduled)
    assert {e.run_id for e in withdrawn} == {r.id for r in upcoming}
    assert {e.reason for e in withdrawn} == {"pipeline deleted"}


# --- validation -----------------------------------------------------------------------------------------


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(("schedule", "field"), [
    ({"cron": "61 * * * *"}, "schedule.cron"),
    ({"cron": "0 0 30 2 *"}, "schedule.cron"),
    ({"cron": "0 2 * *"}, "schedule.cron"),
    ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "schedule.timezone"),
    ({"cron": "0 2 * * *", "zone": "UTC"}, "schedule.zone"),
    ({"timezone": "UTC"}, "schedule.cron"),
    ("0 2 * * *", "schedule"),
])
async def test_a_bad_schedule_is_a_422_at_its_field(harness: Harness, schedule: object, field: str) -> None:
    body = {"name": "bad", "connection_id": str(uuid.uuid4()), "streams": [{"name": "s"}], "schedule": schedule}
    created = await harness.client.post("/v1/pipelines", json=body, params={"validate": "false"})
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert fields(created) == [field]
    pid = await harness.create(None)
    changed = await harness.client.patch(f"/v1/pipelines/{pid}", json={"schedule": schedule})
    assert changed.status_code == 422
    assert fields(changed) == [field]


async def test_a_bad_catchup_is_a_422(harness: Harness) -> None:
    pid = await harness.create(None)
    changed = await harness.client.patch(f"/v1/pipelines/{pid}", json={"catchup": "some"})
    assert changed.status_code == 422
    assert fields(changed) == ["catchup"]


@pytest.mark.parametrize(("body", "kind"), [
    ({"schedule": {"cron": "61 * * * *"}}, "cron_invalid"),
    ({"schedule": {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}}, "timezone_unknown"),
    ({"schedule": "0 2 * * *"}, "model_attributes_type"),
    ({"catchup": "some"}, "literal_error"),
])
async def test_schedule_errors_have_the_documented_types(harness: Harness, body: dict[str, Any], kind: str) -> None:
    pid = await harness.create(None)
    changed = await harness.client.patch(f"/v1/pipelines/{pid}", json=body)
    assert [e["type"] for e in changed.json()["errors"]] == [kind]


async def test_the_scheduler_withdraws_upcoming_runs_of_a_pipeline_paused_behind_its_back(harness: Harness) -> None:
    pid = await harness.create("0 * * * *")
    async with harness.runtime.transaction() as session:
        await session.execute(sa.update(Pipeline).where(Pipeline.id == uuid.UUID(pid)).values(status="paused"))
    await harness.tick()
    assert await harness.runs(pid, RunStatus.SCHEDULED) == []
    assert {e.reason for e in await harness.events(RunUnscheduled)} == {"pipeline paused"}


async def test_a_stored_schedule_that_cannot_fire_fires_nothing_and_stops_no_other(harness: Harness) -> None:
    broken, working = await harness.create("0 * * * *"), await harness.create("0 * * * *")
    async with harness.runtime.transaction() as session:
        # As migration 0002 leaves a plain string that was never checked as cron.
        await session.execute(sa.update(Pipeline).where(Pipeline.id == uuid.UUID(broken))
                              .values(schedule={"cron": "every hour", "timezone": "UTC"}))
        await session.execute(sa.delete(Run).where(Run.pipeline_id == uuid.UUID(broken)))
    harness.clock.now = at(10, 1)
    outcome = await harness.tick()
    assert await harness.runs(broken) == []
    assert [r.pipeline_id for r in outcome.queued] == [uuid.UUID(working)]
    shown = await harness.client.get(f"/v1/pipelines/{broken}")
    assert shown.json()["schedule"] == {"cron": "every hour", "timezone": "UTC"}


async def test_the_loop_fires_a_waiting_tick_as_soon_as_the_active_run_ends(tmp_path: Path) -> None:
    clock = Clock(at(10, 5))
    # A poll of an hour: only the wake-up on run.finished can fire the tick within the test.
    settings = orchestrator_settings(tmp_path).model_copy(update={"scheduler_poll_seconds": 3600})
    bus = MemoryBus()
    app = build_app([(definition(None, clock), settings)], title="orchestrator", bus=bus, migrate=True)
    async with running(app, API_TOKEN) as client:
        loop = Harness(client, app.state.runtimes["orchestrator"], clock, bus)
        pid = await loop.create("* * * * *")
        manual = await client.post(f"/v1/pipelines/{pid}/runs")
        assert manual.status_code == 202
        clock.now = at(10, 6)  # the 10:06 tick is due, waiting behind the manual run
        [active] = await loop.runs(pid, RunStatus.QUEUED)
        await loop.finish(active)
        for _ in range(100):
            if await loop.runs(pid, RunStatus.QUEUED):
                break
            await asyncio.sleep(0.02)
        [fired] = await loop.runs(pid, RunStatus.QUEUED)
        assert fired.scheduled_for == at(10, 6)


async def test_catchup_all_is_bounded_to_the_most_recent_hundred_ticks(harness: Harness) -> None:
    pid = await harness.create("0 * * * *", catchup="all")
    await harness.client.post(f"/v1/pipelines/{pid}/pause")
    harness.clock.advance(hours=200)  # 200 hourly ticks missed
    body = (await harness.client.post(f"/v1/pipelines/{pid}/resume")).json()
    missed = [datetime.fromisoformat(r["scheduled_for"]) for r in body["queued"] + body["waiting"]]
    latest = harness.clock.now.replace(minute=0)
    assert missed == [latest - timedelta(hours=h) for h in reversed(range(100))]
    assert len(body["queued"]) == 1
