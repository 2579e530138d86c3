"""jobs-svc's read API: the list's filters, sorts, pages and totals; one run's timeline, attempts,
streams and error; the worker's log, bounded."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.jobs import Jobs, Pipeline, jobs_app
from tidemark.events import (
    Envelope,
    LogRecord,
    PipelineChanged,
    RunCancelRequested,
    RunError,
    RunLogged,
    RunScheduled,
    RunStatus,
    RunWaiting,
    Topic,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[Jobs]:
    async with jobs_app(tmp_path, logs_per_run=10) as app:
        yield app


async def test_a_run_tells_its_timeline_with_times_and_reasons(jobs: Jobs) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    await jobs.deliver(p.queued(run_id, reason="waiting for a slot: 2 of 2 runs are active"), at=T0)
    await jobs.deliver(RunWaiting(run_id=run_id, pipeline_id=p.pipeline_id, reason="waiting for pipeline's run X"),
                       at=T0 + timedelta(seconds=5))
    run = await jobs.get(f"/v1/runs/{run_id}")
    assert (run["status"], run["wait_reason"]) == ("queued", "waiting for pipeline's run X")
    await jobs.deliver(p.requested(run_id), at=T0 + timedelta(seconds=9))
    await jobs.deliver(p.started(run_id), at=T0 + timedelta(seconds=10))
    await jobs.deliver(RunCancelRequested(run_id=run_id, pipeline_id=p.pipeline_id), at=T0 + timedelta(seconds=11))
    error = RunError(message="password authentication failed for user app", kind="config", stream="main.orders")
    await jobs.deliver(p.finished(run_id, RunStatus.FAILED, error=error), at=T0 + timedelta(seconds=20))

    run = await jobs.get(f"/v1/runs/{run_id}")
    assert [(s["status"], s["event"], s["at"], s["reason"]) for s in run["timeline"]] == [
        ("queued", "run.queued", "2026-12-05T12:00:00Z", "waiting for a slot: 2 of 2 runs are active"),
        ("queued", "run.waiting", "2026-12-05T12:00:05Z", "waiting for pipeline's run X"),
        ("queued", "run.requested", "2026-12-05T12:00:09Z", "admitted to start; waiting for a worker"),
        ("running", "run.started", "2026-12-05T12:00:10Z", "worker 4242 started (local launcher)"),
        ("running", "run.cancel_requested", "2026-12-05T12:00:11Z", "cancel requested: cancelled by user"),
        ("failed", "run.finished", "2026-12-05T12:00:20Z", "password authentication failed for user app"),
    ]
    assert run["wait_reason"] is None
    assert run["duration_seconds"] == 10.0
    detail = run["error_detail"]
    assert (detail["kind"], detail["stream"]) == ("config", "main.orders")
    assert "fix the connection or pipeline setting" in detail["hint"]
    [stream] = run["streams"]
    assert (stream["rows_written"], stream["bytes_written"], stream["duration_seconds"]) == (10, 1000, 1.5)
    assert (stream["cursor_before"], stream["cursor_after"]) == ("2026-12-01T00:00:00", "2026-12-02T00:00:00")


async def test_a_run_from_an_older_orchestrator_without_run_queued_has_a_timeline_too(jobs: Jobs) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    await jobs.deliver(p.requested(run_id), at=T0)
    await jobs.deliver(p.started(run_id), p.finished(run_id), at=T0 + timedelta(seconds=3))
    run = await jobs.get(f"/v1/runs/{run_id}")
    assert [s["status"] for s in run["timeline"]] == ["queued", "queued", "running", "succeeded"]
    assert run["timeline"][0]["reason"] == "manual run queued"
    assert run["queued_at"] == "2026-12-05T12:00:00Z"
    assert run["connection_id"] == str(p.connection_id)
    assert run["error_detail"] is None


async def test_retries_link_to_each_other(jobs: Jobs) -> None:
    p = Pipeline()
    first = await p.run(jobs, RunStatus.FAILED, at=T0)
    second, third = uuid.uuid4(), uuid.uuid4()
    await jobs.deliver(p.queued(second, "retry", attempt=2, retry_of=first, not_before=T0 + timedelta(minutes=1)),
                       at=T0 + timedelta(seconds=1))
    waiting = await jobs.get(f"/v1/runs/{second}")
    assert (waiting["not_before"], waiting["trigger"]) == ("2026-12-05T12:01:00Z", "retry")
    assert waiting["timeline"][0]["reason"] == f"retry (attempt 2) of run {first}"
    await jobs.deliver(p.requested(second, "retry", attempt=2, retry_of=first), p.started(second),
                       p.finished(second, RunStatus.FAILED, error=RunError(message="boom", kind="transient")),
                       p.queued(third, "retry", attempt=3, retry_of=second), at=T0 + timedelta(minutes=2))

    run = await jobs.get(f"/v1/runs/{first}")
    assert run["retried_by"] == [str(second)]
    chain = [(a["run_id"], a["attempt"], a["status"]) for a in run["attempts"]]
    assert chain == [(str(first), 1, "failed"), (str(second), 2, "failed"), (str(third), 3, "queued")]
    assert [a["run_id"] for a in (await jobs.get(f"/v1/runs/{third}"))["attempts"]] == [c[0] for c in chain]
    assert (await jobs.get(f"/v1/runs/{third}"))["retry_of"] == str(second)
    assert (await jobs.get(f"/v1/runs/{first}"))["error_detail"]["hint"].startswith("Something the run depends on")


async def test_filters_combine_and_totals_count_each_status_for_the_other_filters(jobs: Jobs) -> None:
    orders, customers = Pipeline("shop-orders"), Pipeline("crm-customers")
    ok = await orders.run(jobs, at=T0)
    bad = await orders.run(jobs, RunStatus.FAILED, trigger="schedule", at=T0 + timedelta(hours=1))
    other = await customers.run(jobs, RunStatus.FAILED, at=T0 + timedelta(hours=2))
    upcoming = uuid.uuid4()
    await jobs.deliver(RunScheduled(run_id=upcoming, pipeline_id=orders.pipeline_id, pipeline_name="shop-orders",
                                    scheduled_for=T0 + timedelta(days=1)), at=T0)

    def ids(page: dict[str, list[dict[str, str]]]) -> list[str]:
        return [r["run_id"] for r in page["items"]]

    everything = await jobs.get("/v1/runs")
    assert ids(everything) == [str(other), str(bad), str(ok), str(upcoming)]  # newest first, upcoming after
    assert everything["totals"] == {"scheduled": 1, "queued": 0, "starting": 0, "running": 0, "succeeded": 1,
                                    "partially_succeeded": 0, "failed": 2, "cancelled": 0}
    assert everything["next_cursor"] is None

    failed = await jobs.get("/v1/runs", status="failed")
    assert ids(failed) == [str(other), str(bad)]
    assert failed["totals"]["succeeded"] == 1  # the counts ignore the status filter: what there is to pick
    mine = await jobs.get("/v1/runs", status="failed", pipeline_id=str(orders.pipeline_id))
    assert ids(mine) == [str(bad)]
    assert (mine["totals"]["failed"], mine["totals"]["succeeded"], mine["totals"]["scheduled"]) == (1, 1, 1)
    assert ids(await jobs.get("/v1/runs", connection_id=str(customers.connection_id))) == [str(other)]
    scheduled = await jobs.get("/v1/runs", trigger="schedule")
    assert ids(scheduled) == [str(bad), str(upcoming)]
    assert (scheduled["totals"]["failed"], scheduled["totals"]["scheduled"], scheduled["totals"]["succeeded"]) == (
        1, 1, 0)
    assert ids(await jobs.get("/v1/runs", q="CUSTOM")) == [str(other)]
    assert ids(await jobs.get("/v1/runs", q="%")) == []  # text, not a pattern
    window = await jobs.get("/v1/runs", started_after="2026-12-05T12:30:00Z", started_before="2026-12-05T13:30:00Z")
    assert ids(window) == [str(bad)]
    assert window["totals"]["failed"] == 1
    assert ids(await jobs.get("/v1/runs", finished_after="2026-12-05T13:30:00Z")) == [str(other)]
    assert ids(await jobs.get("/v1/runs", scheduled_after="2026-12-06T00:00:00Z")) == [str(upcoming)]
    assert ids(await jobs.get("/v1/runs", sort="started_at")) == [str(ok), str(bad), str(other), str(upcoming)]
    assert ids(await jobs.get("/v1/runs", sort="-finished_at")) == [str(other), str(bad), str(ok), str(upcoming)]


async def test_pages_follow_the_cursor_without_repeats_or_gaps(jobs: Jobs) -> None:
    p = Pipeline()
    made = [await p.run(jobs, RunStatus.FAILED if i % 3 else RunStatus.SUCCEEDED, at=T0 + timedelta(minutes=i % 4))
            for i in range(23)]  # several runs share a time: the run id breaks the tie
    for sort in ("newest", "oldest", "-started_at", "finished_at"):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"sort": sort, "limit": 5, **({"cursor": cursor} if cursor else {})}
            page = await jobs.get("/v1/runs", **params)
            seen += [r["run_id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(str(r) for r in made), sort
        assert len(seen) == len(made)
    failed_pages = await jobs.get("/v1/runs", status="failed", limit=5)
    assert len(failed_pages["items"]) == 5
    assert failed_pages["totals"]["failed"] == 15


async def test_a_bad_cursor_or_filter_is_a_422_naming_the_field(jobs: Jobs) -> None:
    for params, field in [({"cursor": "not-a-cursor"}, "cursor"), ({"trigger": "cron"}, "trigger.0"),
                          ({"sort": "size"}, "sort"), ({"started_after": "yesterday"}, "started_after"),
                          ({"pipeline_id": "x"}, "pipeline_id.0")]:
        response = await jobs.client.get("/v1/runs", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["field"] == field
    p = Pipeline()
    for _ in range(3):
        await p.run(jobs, at=T0)
    cursor = (await jobs.get("/v1/runs", limit=1))["next_cursor"]
    other_sort = await jobs.client.get("/v1/runs", params={"cursor": cursor, "sort": "started_at"})
    assert other_sort.status_code == 422
    forgeries = (["newest", 2**70, str(uuid.uuid4())], ["newest", 1, 5], ["started_at", {"t": "2026-12-01T00:00"}, 1])
    for forged in forgeries:
        raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        answer = await jobs.client.get("/v1/runs", params={"cursor": raw, "sort": forged[0]})
        assert answer.status_code == 422, (forged, answer.text)
        assert answer.json()["errors"][0]["field"] == "cursor"
    # A time without a zone is UTC.
    assert len((await jobs.get("/v1/runs", started_after="2026-12-05T00:00:00"))["items"]) == 3


def record(seq: int, message: str) -> LogRecord:
    return LogRecord(seq=seq, at=T0 + timedelta(seconds=seq), level="info", logger="tidemark.worker",
                     message=message, fields={"stream": "main.orders"})


async def test_logs_page_by_after_and_keep_only_the_newest_records(jobs: Jobs) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    await jobs.deliver(p.queued(run_id), p.requested(run_id), p.started(run_id))
    logged = RunLogged(run_id=run_id, pipeline_id=p.pipeline_id, records=[record(i, f"line {i}") for i in range(6)])
    await jobs.deliver(logged, logged)  # the same batch twice (a redelivery) is stored once
    first = await jobs.get(f"/v1/runs/{run_id}/logs", limit=4)
    assert [r["message"] for r in first["items"]] == ["line 0", "line 1", "line 2", "line 3"]
    assert (first["live"], first["next_after"]) == (True, 3)
    rest = await jobs.get(f"/v1/runs/{run_id}/logs", after=first["next_after"])
    assert [r["seq"] for r in rest["items"]] == [4, 5]
    assert rest["items"][0]["fields"] == {"stream": "main.orders"}
    nothing_new = await jobs.get(f"/v1/runs/{run_id}/logs", after=5)
    assert (nothing_new["items"], nothing_new["next_after"]) == ([], 5)

    # logs_per_run=10: the newest ten stay, the older ones are dropped and counted.
    await jobs.deliver(RunLogged(run_id=run_id, pipeline_id=p.pipeline_id, dropped=3,
                                 records=[record(i, f"line {i}") for i in range(6, 14)]), p.finished(run_id))
    kept = await jobs.get(f"/v1/runs/{run_id}/logs")
    assert [r["seq"] for r in kept["items"]] == list(range(4, 14))
    assert (kept["dropped"], kept["live"]) == (7, False)
    run = await jobs.get(f"/v1/runs/{run_id}")
    assert (run["log_records"], run["logs_dropped"]) == (10, 7)


async def test_following_a_log_streams_records_until_the_run_ends(jobs: Jobs) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    await jobs.deliver(p.queued(run_id), p.started(run_id),
                       RunLogged(run_id=run_id, pipeline_id=p.pipeline_id, records=[record(0, "reading")]),
                       p.finished(run_id))
    async with jobs.client.stream("GET", f"/v1/runs/{run_id}/logs", params={"follow": "true"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join([chunk async for chunk in response.aiter_text()])
    assert "event: log" in body
    assert '"message":"reading"' in body
    assert body.rstrip().endswith('data: {"status": "succeeded"}')


async def test_the_list_and_logs_need_a_token(jobs: Jobs) -> None:
    for path in ("/v1/runs", f"/v1/runs/{uuid.uuid4()}/logs"):
        response = await jobs.client.get(path, headers={"Authorization": ""})
        assert response.status_code == 401


async def test_a_renamed_pipeline_is_found_with_its_whole_history_by_its_new_name(jobs: Jobs) -> None:
    orders, customers = Pipeline("shop-orders"), Pipeline("crm-customers")
    first = await orders.run(jobs, at=T0)
    second = await orders.run(jobs, RunStatus.FAILED, at=T0 + timedelta(hours=1))
    await customers.run(jobs, at=T0)
    renamed = replace(orders, name="orders-webshop")

    async def changed(change: str) -> None:
        event = PipelineChanged(pipeline_id=orders.pipeline_id, change=change,  # type: ignore[arg-type]
                                pipeline=renamed.spec(), status="active")
        await jobs.bus.publish(Topic.PIPELINES, Envelope.wrap(event, source="orchestrator-svc"))
        await jobs.bus.drain()

    await changed("updated")
    found = await jobs.get("/v1/runs", q="webshop")
    assert [r["run_id"] for r in found["items"]] == [str(second), str(first)]
    assert {r["pipeline_name"] for r in found["items"]} == {"orders-webshop"}
    assert (await jobs.get("/v1/runs", q="shop-orders"))["items"] == []
    assert {r["pipeline_name"] for r in (await jobs.get("/v1/runs", q="crm"))["items"]} == {"crm-customers"}

    await changed("deleted")  # a deleted pipeline's runs keep the name it last had
    assert len((await jobs.get("/v1/runs", q="webshop"))["items"]) == 2
