"""The Jobs page in a real browser (headless Chromium): sign-in, sections and counts, a filter in the
URL, a running run moving to Failed on auto-refresh, and a run's page with its live log."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.browser import browser  # noqa: F401 - a fixture
from tests.fixtures.jobs import TOKEN, JobsServer, Pipeline
from tidemark.events import (
    LogRecord,
    RunError,
    RunFinished,
    RunLogged,
    RunScheduled,
    RunStatus,
    StreamStats,
)
from tidemark.events.contracts import MaintenanceStats

pytestmark = pytest.mark.unit
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JobsServer]:
    with JobsServer(tmp_path, page_refresh_seconds=1) as running:
        yield running


@pytest.fixture
def page(browser: Any, server: JobsServer) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def sign_in(page: Any, server: JobsServer, path: str = "/jobs") -> None:
    page.goto(server.url + path)
    page.fill("#token", TOKEN)
    page.click("#sign-in")


def populate(server: JobsServer) -> dict[str, Any]:
    now = datetime.now(UTC)
    orders, customers = Pipeline("shop-orders"), Pipeline("crm-customers")
    made: dict[str, Any] = {"orders": orders, "customers": customers}
    for hours, pipeline, status in [(20, orders, RunStatus.SUCCEEDED), (14, customers, RunStatus.SUCCEEDED),
                                    (8, orders, RunStatus.FAILED), (3, customers, RunStatus.SUCCEEDED),
                                    (2, orders, RunStatus.SUCCEEDED)]:
        run_id = uuid.uuid4()
        error = RunError(message="source unreachable", kind="transient") if status == RunStatus.FAILED else None
        server.deliver(pipeline.queued(run_id, "schedule"), at=now - timedelta(hours=hours))
        server.deliver(pipeline.started(run_id), at=now - timedelta(hours=hours, minutes=-1))
        server.deliver(pipeline.finished(run_id, status, error=error), at=now - timedelta(hours=hours, minutes=-25))
    running = uuid.uuid4()
    server.deliver(customers.queued(running), at=now - timedelta(minutes=20))
    server.deliver(customers.started(running), at=now - timedelta(minutes=19))
    server.deliver(RunLogged(run_id=running, pipeline_id=customers.pipeline_id, records=[
        LogRecord(seq=0, at=now - timedelta(minutes=18), level="info", logger="w", message="loading stream",
                  fields={"stream": "main.customers"})]), at=now - timedelta(minutes=18))
    for hours in (4, 10, 16, 22):
        server.deliver(RunScheduled(run_id=uuid.uuid4(), pipeline_id=orders.pipeline_id, pipeline_name=orders.name,
                                    scheduled_for=now + timedelta(hours=hours)))
    made["running"] = running
    return made


def count(page: Any, section: str) -> int:
    return int(page.locator(f'[data-count="{section}"]').inner_text())


def test_without_a_token_the_page_shows_a_sign_in_form_and_no_run_data(page: Any, server: JobsServer) -> None:
    populate(server)
    page.goto(server.url + "/jobs")
    assert page.locator("#token").is_visible()
    assert page.locator("#runs").count() == 0
    assert "shop-orders" not in page.content()
    page.fill("#token", "not-the-token")
    page.click("#sign-in")
    assert page.locator("#signin-error").inner_text() == "That token is not valid."
    assert "shop-orders" not in page.content()


def test_the_page_shows_sections_counts_a_timeline_and_a_filter_kept_in_the_url(
    page: Any, server: JobsServer,
) -> None:
    made = populate(server)
    sign_in(page, server)
    page.wait_for_selector("#runs")
    assert (count(page, "upcoming"), count(page, "running"), count(page, "failed"), count(page, "all")) == (4, 1, 1, 10)
    assert page.locator("#runs tbody tr").count() == 10
    lanes = page.locator("#timeline g.lane")
    assert sorted(lanes.nth(i).get_attribute("data-pipeline") for i in range(lanes.count())) == [
        "crm-customers", "shop-orders"]
    orders_lane = page.locator('#timeline g.lane[data-pipeline="shop-orders"]')
    assert orders_lane.locator("rect.bar-scheduled").count() == 4  # drawn ahead of now
    assert orders_lane.locator("rect.bar-failed").count() == 1
    shot = page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("TIDEMARK_TEST_UPDATE_SCREENSHOT"):  # how docs/jobs.png is made
        (DOCS / "jobs.png").write_bytes(shot)

    page.fill('input[name="q"]', "crm")
    page.click("#apply")
    page.wait_for_url("**q=crm**")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 3
    assert {rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)} == {"crm-customers"}
    assert count(page, "all") == 3
    shared = page.url  # a bookmark opens the same filtered view
    page.goto(server.url + "/jobs")
    page.goto(shared)
    assert page.locator("#runs tbody tr").count() == 3
    page.click('[data-section="upcoming"]')
    assert "q=crm" in page.url
    assert page.locator("#runs").inner_text().count("No runs match") == 1
    assert made["orders"].name not in page.locator("#runs").inner_text()


def test_a_running_run_moves_to_failed_when_it_fails(page: Any, server: JobsServer) -> None:
    made = populate(server)
    sign_in(page, server, "/jobs?section=running")
    running = f'#runs tr[data-run="{made["running"]}"]'
    page.wait_for_selector(running)
    assert page.locator(running).get_attribute("data-status") == "running"
    assert count(page, "failed") == 1

    customers: Pipeline = made["customers"]
    server.deliver(customers.finished(made["running"], RunStatus.FAILED,
                                      error=RunError(message="connection reset by peer", kind="transient")))
    page.wait_for_selector(running, state="detached", timeout=10_000)  # auto-refresh, no reload
    page.wait_for_function("document.querySelector('[data-count=\"failed\"]').innerText === '2'")
    page.click('[data-section="failed"]')
    assert page.locator(running).get_attribute("data-status") == "failed"
    assert "connection reset by peer" in page.locator(running).inner_text()


def test_the_run_page_shows_timeline_streams_and_the_live_log(page: Any, server: JobsServer) -> None:
    made = populate(server)
    run_id, customers = made["running"], made["customers"]
    sign_in(page, server, f"/jobs/runs/{run_id}")
    page.wait_for_selector("#log")
    assert "loading stream" in page.locator("#log").inner_text()
    assert "worker 4242 started" in page.locator("#timeline-steps").inner_text()

    server.deliver(RunLogged(run_id=run_id, pipeline_id=customers.pipeline_id, records=[
        LogRecord(seq=1, at=datetime.now(UTC), level="warning", logger="w", message="slow source: 2 s per batch")]))
    page.wait_for_function("document.getElementById('log').innerText.includes('slow source')")
    shown = page.locator("#log").inner_text().strip().splitlines()
    assert len(shown) == 2  # one line per record, the rendered one and the one that came live
    assert shown[0].endswith("loading stream stream=main.customers")
    server.deliver(customers.finished(run_id))
    page.wait_for_function("document.getElementById('run-status').innerText === 'succeeded'")
    assert "tidemark.orders" in page.locator("#streams").inner_text()
    assert page.locator("#streams td.reconciled").inner_text() == "yes: source 10, read 10, committed 10"
    assert "succeeded" in page.locator("#timeline-steps").inner_text()
    assert "slow source" in page.locator("#log").inner_text()


def test_a_maintenance_runs_page_shows_what_it_did_to_each_table(page: Any, server: JobsServer) -> None:
    orders = Pipeline("shop-orders")
    run_id = uuid.uuid4()
    did = MaintenanceStats(actions=["compact", "expire"], data_files_before=212, data_files_after=3,
                           delete_files_before=57, delete_files_after=0, files_rewritten=209,
                           delete_files_folded=57, bytes_rewritten=734_003, snapshots_expired=41, files_deleted=260,
                           bytes_reclaimed=1_250_000)
    stats = StreamStats(stream="main.orders", table="shop.orders", status="succeeded", maintenance=did)
    server.deliver(orders.queued(run_id, "maintenance"))
    server.deliver(orders.started(run_id))
    server.deliver(RunFinished(run_id=run_id, pipeline_id=orders.pipeline_id, status=RunStatus.SUCCEEDED,
                               streams=[stats]))
    sign_in(page, server, f"/jobs/runs/{run_id}")
    page.wait_for_selector("#maintenance")
    cells = [c.strip() for c in page.locator("#maintenance tbody td").all_inner_texts()]
    assert cells == ["shop.orders", "compact, expire", "212 → 3", "57 → 0", "209", "57", "734003", "41", "260",
                     "1250000"]


def test_an_ingestion_runs_page_has_no_maintenance_section(page: Any, server: JobsServer) -> None:
    made = populate(server)
    run_id = uuid.uuid4()
    server.deliver(made["orders"].queued(run_id))
    server.deliver(made["orders"].finished(run_id))
    sign_in(page, server, f"/jobs/runs/{run_id}")
    page.wait_for_selector("#streams")
    assert page.locator("#maintenance").count() == 0
