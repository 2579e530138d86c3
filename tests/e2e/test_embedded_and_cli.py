"""`make run` in miniature: `tidemark up --demo` as a process, then the CLI against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.drift import webhook_receiver
from tests.fixtures.embedded import Embedded, embedded, ok
from tests.fixtures.flaky_proxy import flaky_proxy
from tests.fixtures.slow_source import add_rows, slow_items
from tidemark.connectors.sql.sqlite.source import sample_database
from tidemark.lakehouse import Lakehouse, LakehouseSettings
from tidemark_testing.fake_vendors.hubspot import FakeHubSpot, HubSpotObject, prop
from tidemark_testing.fake_vendors.server import serving
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.e2e
__all__ = ["embedded"]  # the platform fixture (tests/fixtures/embedded.py), one per module


def test_demo_run_succeeds_and_says_where_to_look(embedded: Embedded) -> None:
    log = embedded.process.log.read_text()
    assert "succeeded: demo.customers (200 rows), demo.orders (1000 rows)" in log, log[-3000:]
    assert f"API token: {embedded.token}" in log
    assert (embedded.home / "token").stat().st_mode & 0o777 == 0o600
    assert (embedded.home / "warehouse").is_dir()
    assert f"Jobs page: {embedded.process.url}/jobs" in log


def test_the_demo_run_is_on_the_jobs_page_with_its_worker_log(embedded: Embedded) -> None:
    [run] = json.loads(ok(embedded.cli("--json", "runs", "list", "--pipeline", "demo-shop")).output)
    logs = ok(embedded.cli("runs", "logs", run["run_id"])).output  # shipped by the worker as run.log events
    assert "run started" in logs
    assert "stream loaded" in logs
    with httpx.Client(base_url=embedded.process.url) as browser:
        assert "demo-shop" not in browser.get("/jobs").text  # no token, no runs
        browser.cookies.set("tidemark_token", embedded.token)
        page = browser.get("/jobs", params={"q": "demo-shop"})
        assert page.status_code == 200
        assert run["run_id"] in page.text
        detail = browser.get(f"/jobs/runs/{run['run_id']}")
        assert "stream loaded" in detail.text


def test_cli_drives_connections_pipelines_and_runs(embedded: Embedded) -> None:
    listed = embedded.cli("connections", "list")
    assert listed.exit_code == 0, listed.output
    assert "demo-shop" in listed.output

    created = embedded.cli("connections", "create", "--name", "cli-shop", "--type", "sqlite",
                           "--set", "path=sample:shop")
    assert created.exit_code == 0, created.output
    check = embedded.cli("connections", "check", "cli-shop")
    assert check.exit_code == 0, check.output
    assert "succeeded" in check.output
    discovered = embedded.cli("--json", "connections", "discover", "cli-shop")
    streams = {s["name"]: s for s in json.loads(discovered.output)["streams"]}
    assert streams["main.orders"]["primary_key"] == ["id"]

    pipeline = embedded.cli("pipelines", "create", "--name", "cli-orders", "--connection", "cli-shop",
                            "--stream", "main.orders", "--namespace", "cli")
    assert pipeline.exit_code == 0, pipeline.output
    run = embedded.cli("--json", "pipelines", "run", "cli-orders", "--wait")
    assert run.exit_code == 0, run.output
    finished = json.loads(run.output)
    assert finished["status"] == "succeeded"
    assert finished["rows_written"] == 1000

    runs = json.loads(embedded.cli("--json", "runs", "list", "--pipeline", "cli-orders").output)
    assert [r["run_id"] for r in runs] == [finished["run_id"]]
    failed = json.loads(embedded.cli("--json", "runs", "list", "--status", "failed").output)
    assert failed == []
    table = embedded.cli("runs", "list", "--status", "succeeded")
    assert table.output.splitlines()[0].split()[:3] == ["RUN_ID", "PIPELINE_NAME", "STATUS"]
    assert "cli-orders" in table.output


def test_cli_reports_bad_input_by_field_and_missing_token(embedded: Embedded) -> None:
    bad = embedded.cli("connections", "create", "--name", "broken", "--type", "sqlite", "--set", "colour=blue")
    assert bad.exit_code == 1
    assert "config.path" in bad.output
    assert "config.colour" in bad.output
    anonymous = embedded.cli("runs", "list", token="")
    assert anonymous.exit_code == 1
    assert "Missing bearer token" in anonymous.output
    wrong = embedded.cli("runs", "list", token="not-the-token")
    assert "Invalid bearer token" in wrong.output


def test_cli_saves_a_pipeline_unvalidated_only_when_asked(embedded: Embedded) -> None:
    ok(embedded.cli("connections", "create", "--name", "checked-shop", "--type", "sqlite",
                    "--set", "path=sample:shop"))
    refused = embedded.cli("pipelines", "create", "--name", "checked", "--connection", "checked-shop",
                           "--stream", "main.nowhere", "--namespace", "checked")
    assert refused.exit_code == 1
    assert "streams.0.name" in refused.output
    assert "main.orders" in refused.output  # the message lists what the source has
    saved = ok(embedded.cli("--json", "pipelines", "create", "--name", "checked", "--connection", "checked-shop",
                            "--stream", "main.nowhere", "--namespace", "checked", "--no-validate"))
    assert json.loads(saved.output)["streams"][0]["name"] == "main.nowhere"
    # A collision is refused even unvalidated: it needs no source.
    clash = embedded.cli("pipelines", "update", "checked", "--stream", "main.orders", "--stream", "public.orders",
                         "--no-validate")
    assert clash.exit_code == 1
    assert "streams.1.name" in clash.output
    assert "'public.orders' would write the iceberg table checked.orders" in clash.output
    assert "'main.orders'" in clash.output


def test_cli_changes_and_deletes_connections(embedded: Embedded) -> None:
    ok(embedded.cli("connections", "create", "--name", "to-change", "--type", "sqlite", "--set", "path=sample:shop"))
    changed = ok(embedded.cli("--json", "connections", "update", "to-change", "--name", "changed",
                              "--set", "batch_size=500"))
    assert json.loads(changed.output)["config"] == {"path": "sample:shop", "batch_size": 500}
    shown = ok(embedded.cli("connections", "show", "changed"))
    assert "batch_size" in shown.output
    assert "500" in shown.output
    # The merged config is validated again: a bad value is refused by field.
    bad = embedded.cli("connections", "update", "changed", "--set", "batch_size=0")
    assert bad.exit_code == 1
    assert "config.batch_size" in bad.output
    nothing = embedded.cli("connections", "update", "changed")
    assert nothing.exit_code == 2
    assert "nothing to change" in nothing.output
    refused = embedded.cli("connections", "delete", "changed", input="n\n")
    assert refused.exit_code == 1  # answered no: aborted, still there
    ok(embedded.cli("connections", "show", "changed"))
    ok(embedded.cli("connections", "delete", "changed", "--yes"))
    names = [c["name"] for c in json.loads(embedded.cli("--json", "connections", "list").output)]
    assert "changed" not in names
    assert "to-change" not in names
    assert "sqlite" in ok(embedded.cli("connections", "types")).output


def test_cli_changes_pauses_resumes_and_deletes_pipelines(embedded: Embedded) -> None:
    ok(embedded.cli("pipelines", "create", "--name", "to-change", "--connection", "demo-shop",
                    "--stream", "main.orders", "--namespace", "before"))
    changed = json.loads(ok(embedded.cli(
        "--json", "pipelines", "update", "to-change", "--stream", "main.orders", "--stream", "main.customers",
        "--mode", "incremental", "--cursor-field", "id", "--primary-key", "id", "--namespace", "after",
        "--schedule", "0 3 * * *", "--timezone", "Europe/Berlin", "--catchup", "none",
    )).output)
    assert [(s["name"], s["sync_mode"], s["cursor_field"], s["primary_key"]) for s in changed["streams"]] == [
        ("main.orders", "incremental", "id", ["id"]), ("main.customers", "incremental", "id", ["id"])]
    assert changed["destination"] == {"kind": "iceberg", "namespace": "after", "table_prefix": ""}
    assert changed["schedule"] == {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    assert changed["catchup"] == "none"
    moved = json.loads(ok(embedded.cli("--json", "pipelines", "update", "to-change", "--timezone", "UTC")).output)
    assert moved["schedule"] == {"cron": "0 3 * * *", "timezone": "UTC"}
    bad_zone = embedded.cli("pipelines", "update", "to-change", "--timezone", "Mars/Olympus")
    assert bad_zone.exit_code == 1
    assert "schedule.timezone" in bad_zone.output
    unscheduled = json.loads(ok(embedded.cli("--json", "pipelines", "update", "to-change", "--no-schedule")).output)
    assert unscheduled["schedule"] is None
    assert unscheduled["destination"]["namespace"] == "after"  # untouched fields stay

    tuned = json.loads(ok(embedded.cli(
        "--json", "pipelines", "update", "to-change", "--lookback", "30", "--columns", "id,updated_at",
        "--partition", "updated_at:day")).output)
    assert [(s["lookback"], s["columns"], s["partition"], s["primary_key"]) for s in tuned["streams"]] == [
        (30, ["id", "updated_at"], [{"column": "updated_at", "transform": "day"}], ["id"])] * 2

    paused = ok(embedded.cli("pipelines", "pause", "to-change"))
    assert "paused" in paused.output
    refused = embedded.cli("pipelines", "run", "to-change")
    assert refused.exit_code == 1
    assert "paused" in refused.output
    resumed = json.loads(ok(embedded.cli("--json", "pipelines", "resume", "to-change")).output)
    assert resumed["pipeline"]["status"] == "active"
    assert resumed["queued"] == []  # no schedule: nothing was missed
    shown = ok(embedded.cli("pipelines", "show", "to-change"))
    assert "iceberg after" in shown.output
    assert "main.customers" in shown.output

    ok(embedded.cli("pipelines", "delete", "to-change", "--yes"))
    gone = embedded.cli("pipelines", "show", "to-change")
    assert gone.exit_code == 1
    assert "no pipeline named 'to-change'" in gone.output


def test_cli_creates_a_pipeline_from_a_streams_file(embedded: Embedded, tmp_path: Path) -> None:
    spec = [{"name": "main.orders", "sync_mode": "incremental_append", "cursor_field": "id"},
            {"name": "main.customers", "sync_mode": "full_refresh", "columns": ["id", "country"]}]
    (tmp_path / "streams.json").write_text(json.dumps(spec))
    created = json.loads(ok(embedded.cli(
        "--json", "pipelines", "create", "--name", "from-file", "--connection", "demo-shop",
        "--streams-file", str(tmp_path / "streams.json"), "--namespace", "fromfile")).output)
    assert [(s["name"], s["sync_mode"], s["cursor_field"], s["columns"]) for s in created["streams"]] == [
        ("main.orders", "incremental_append", "id", None), ("main.customers", "full_refresh", None, ["id", "country"])]
    both = embedded.cli("pipelines", "create", "--name", "x", "--connection", "demo-shop", "--stream", "main.orders",
                        "--streams-file", str(tmp_path / "streams.json"))
    assert both.exit_code == 2
    ok(embedded.cli("pipelines", "delete", "from-file", "--yes"))


def test_run_wait_shows_each_streams_outcome_and_exits_non_zero(embedded: Embedded, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE TABLE dropped (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO kept VALUES (?, ?)", [(i, f"k{i}") for i in range(7)])
        db.executemany("INSERT INTO dropped VALUES (?, ?)", [(i, f"d{i}") for i in range(3)])
    db.close()
    ok(embedded.cli("connections", "create", "--name", "vanishing", "--type", "sqlite", "--set", f"path={source}"))
    ok(embedded.cli("pipelines", "create", "--name", "vanishing", "--connection", "vanishing",
                    "--stream", "main.kept", "--stream", "main.dropped", "--namespace", "vanishing"))
    # The source changes after the pipeline was accepted: one stream's table is gone at run time.
    with sqlite3.connect(source) as db:
        db.execute("DROP TABLE dropped")
    db.close()

    partial = embedded.cli("pipelines", "run", "vanishing", "--wait")
    assert partial.exit_code == 3, partial.output  # some streams committed, some failed
    head, streams = partial.output.split("\n\n")[:2]
    assert "partially_succeeded" in head
    lines = {line.split()[0]: line for line in streams.splitlines()[2:] if line and not line.startswith(" ")}
    # (Table names follow the naming rule; they are in the namespace the pipeline names.)
    assert lines["main.kept"].split()[1].startswith("vanishing.")
    assert lines["main.kept"].split()[2:5] == ["succeeded", "7", "7"]
    assert lines["main.dropped"].split()[2] == "failed"
    assert "dropped" in streams.split("main.dropped", 1)[1]  # the stream's own error message follows

    run_id = head.split()[1]
    shown = ok(embedded.cli("runs", "show", run_id))
    assert shown.output.split("\n\n")[1].strip() == streams.strip()
    as_json = json.loads(ok(embedded.cli("--json", "runs", "show", run_id)).output)
    failed_stream = next(s for s in as_json["streams"] if s["stream"] == "main.dropped")
    assert failed_stream["error"]["message"]
    for word in failed_stream["error"]["message"].split():
        assert word in streams  # wrapped, never cut

    with sqlite3.connect(source) as db:
        db.execute("DROP TABLE kept")
    db.close()
    failed = embedded.cli("--json", "pipelines", "run", "vanishing", "--wait")
    assert failed.exit_code == 1
    assert json.loads(failed.output)["status"] == "failed"


def test_cli_reads_tables_through_the_api(embedded: Embedded) -> None:
    listed = json.loads(ok(embedded.cli("--json", "tables", "list")).output)
    demo = {t["source"]["stream"]: t for t in listed if (t["source"] or {}).get("pipeline_name") == "demo-shop"}
    orders, customers = demo["main.orders"], demo["main.customers"]
    assert orders["namespace"] == "demo"
    assert orders["row_count"] == 1000
    assert customers["row_count"] == 200
    text = ok(embedded.cli("tables", "list")).output
    assert text.splitlines()[0].split() == ["TABLE", "ROWS", "SNAPSHOT", "LAST_UPDATED", "PIPELINE", "STREAM"]
    assert any(line.split()[:2] == [customers["identifier"], "200"] for line in text.splitlines())

    shown = ok(embedded.cli("tables", "show", orders["identifier"])).output
    flat = " ".join(shown.split())
    assert "rows: 1000" in flat
    assert "source stream: main.orders" in flat
    assert "pipeline: demo-shop (" in flat
    assert "Columns NAME TYPE REQUIRED KEY id " in flat
    assert "Snapshots (newest first)" in shown
    detail = json.loads(ok(embedded.cli("--json", "tables", "show", orders["identifier"])).output)
    assert detail["snapshots"][0]["run_id"] == orders["last_run_id"]
    assert detail["cursor"] is None  # full refresh keeps no cursor

    preview = json.loads(ok(embedded.cli("--json", "tables", "preview", orders["identifier"], "--limit", "5")).output)
    assert len(preview["rows"]) == 5
    assert set(preview["rows"][0]) == set(preview["columns"])
    table_text = ok(embedded.cli("tables", "preview", customers["identifier"], "--limit", "3")).output
    assert len(table_text.splitlines()) >= 4  # header and three rows (long cells may wrap)

    missing = embedded.cli("tables", "show", "demo.nothing")
    assert missing.exit_code == 1
    assert "no table 'demo.nothing'" in missing.output
    bad = embedded.cli("tables", "preview", "nodot")
    assert bad.exit_code == 1
    assert "table:" in bad.output
def test_worker_says_loaded_file_io_at_most_once_and_not_at_info(embedded: Embedded) -> None:
    # The workers of the demo and CLI runs log into the platform's output.
    log = embedded.process.log.read_text()
    assert "stream loaded" in log
    loaded = [line for line in log.splitlines() if "Loaded FileIO" in line]
    assert len(loaded) <= 1, loaded
    assert not any(" INFO " in line for line in loaded), loaded


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_cancels_a_running_run_and_its_table_keeps_its_rows(embedded: Embedded, pg_admin_dsn: str) -> None:
    url = create_database(pg_admin_dsn, "tidemark_e2e_cancel")
    try:
        source = slow_items(url)
        add_rows(source["conninfo"], 1, 500, delay=0)
        settings = [f"--set={k}={v}" for k, v in source["config"].items()]
        ok(embedded.cli("connections", "create", "--name", "slow-pg", "--type", "postgres", *settings))
        ok(embedded.cli("pipelines", "create", "--name", "slow-pg", "--connection", "slow-pg",
                        "--stream", "public.slow_items", "--namespace", "slowpg"))
        loaded = json.loads(ok(embedded.cli("--json", "pipelines", "run", "slow-pg", "--wait")).output)
        assert (loaded["status"], loaded["rows_written"]) == ("succeeded", 500)
        lake = Lakehouse(LakehouseSettings().resolve(embedded.home))
        [stream] = loaded["streams"]

        def table_now() -> tuple[int, list[int]]:
            table = lake.catalog.load_table(stream["table"])
            ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
            return table.current_snapshot().snapshot_id, sorted(ids)  # type: ignore[union-attr]

        before = table_now()
        assert before == (stream["snapshot_id"], list(range(1, 501)))

        # 20,000 more rows at 2 ms each: this full refresh would take 40 s.
        add_rows(source["conninfo"], 501, 20_500, delay=0.002)
        run_id = json.loads(ok(embedded.cli("--json", "pipelines", "run", "slow-pg")).output)["run_id"]
        deadline = time.monotonic() + 60
        while True:  # until the worker is reading (jobs-svc shows the heartbeat's progress)
            result = embedded.cli("--json", "runs", "show", run_id)
            assert time.monotonic() < deadline, result.output
            if result.exit_code == 0:
                shown = json.loads(result.output)
                assert shown["status"] in ("queued", "starting", "running"), shown
                if shown["status"] == "running" and shown["rows_read"] > 0:
                    break
            else:
                assert "unknown to jobs-svc" in result.output  # its first event is on its way
            time.sleep(0.2)

        cancelled = ok(embedded.cli("runs", "cancel", run_id))
        assert "cancel requested" in cancelled.output
        deadline = time.monotonic() + 30
        while (shown := json.loads(ok(embedded.cli("--json", "runs", "show", run_id)).output))["status"] == "running":
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert (shown["status"], shown["error"]) == ("cancelled", "cancelled by user")
        assert table_now() == before, "a cancelled run must not commit"

        again = embedded.cli("runs", "cancel", run_id)
        assert again.exit_code == 1
        assert "already ended: cancelled" in again.output
        # The pipeline is free again; a run cancelled as soon as it is triggered (before jobs-svc
        # heard of it, so its pipeline is named) ends cancelled too, and never touches the table.
        queued = json.loads(ok(embedded.cli("--json", "pipelines", "run", "slow-pg")).output)["run_id"]
        early = ok(embedded.cli("--json", "runs", "cancel", queued, "--pipeline", "slow-pg"))
        assert json.loads(early.output)["outcome"] in ("cancelled", "cancel_requested")
        deadline = time.monotonic() + 30
        while (result := embedded.cli("--json", "runs", "show", queued)).exit_code != 0 or \
                json.loads(result.output)["status"] != "cancelled":
            assert time.monotonic() < deadline, result.output
            time.sleep(0.2)
        assert table_now() == before
    finally:
        drop_database(pg_admin_dsn, url)


def test_a_schedule_fires_runs_that_jobs_shows_and_pause_withdraws_upcoming_ones(embedded: Embedded) -> None:
    ok(embedded.cli("pipelines", "create", "--name", "every-3s", "--connection", "demo-shop",
                    "--stream", "main.customers", "--namespace", "scheduled",
                    "--schedule", "* * * * * */3", "--timezone", "Europe/Berlin"))

    def runs(status: str) -> list[dict[str, object]]:
        listed = ok(embedded.cli("--json", "runs", "list", "--pipeline", "every-3s", "--status", status,
                                 "--limit", "500"))
        return list(json.loads(listed.output))

    deadline = time.monotonic() + 90
    while not (done := runs("succeeded")):
        assert time.monotonic() < deadline, embedded.process.log_tail()
        time.sleep(0.5)
    assert done[0]["trigger"] == "schedule"
    assert done[0]["scheduled_for"]
    upcoming = runs("scheduled")  # jobs-svc lists the stored ticks ahead
    assert upcoming
    assert all(r["trigger"] == "schedule" and r["scheduled_for"] for r in upcoming)
    shown = ok(embedded.cli("runs", "list", "--pipeline", "every-3s", "--status", "scheduled"))
    assert "SCHEDULED_FOR" in shown.output.splitlines()[0]

    paused = ok(embedded.cli("pipelines", "pause", "every-3s"))
    assert "upcoming run(s) withdrawn" in paused.output
    deadline = time.monotonic() + 30
    while runs("scheduled"):  # run.unscheduled reaches jobs-svc through the broker
        assert time.monotonic() < deadline
        time.sleep(0.5)
    ok(embedded.cli("pipelines", "delete", "every-3s", "--yes"))


def test_a_chain_of_pipelines_runs_in_order_with_real_workers(embedded: Embedded) -> None:
    for name, upstream in (("chain-a", None), ("chain-b", "chain-a"), ("chain-c", "chain-b")):
        ok(embedded.cli("pipelines", "create", "--name", name, "--connection", "demo-shop", "--stream",
                        "main.customers", "--namespace", name.replace("-", "_"),
                        *(("--upstream", upstream) if upstream else ())))
    graph = ok(embedded.cli("pipelines", "graph", "chain-b")).output
    assert graph.splitlines() == ["chain-b", "├── upstreams (run before it)", "│   └── chain-a",
                                  "└── downstreams (run after it)", "    └── chain-c"]

    first = json.loads(ok(embedded.cli("--json", "pipelines", "run", "chain-a", "--wait")).output)
    assert first["status"] == "succeeded"
    second = _succeeded_run(embedded, "chain-b")
    third = _succeeded_run(embedded, "chain-c")
    assert (second["trigger"], third["trigger"]) == ("dependency", "dependency")
    for moment in (first["finished_at"], second["started_at"], second["finished_at"], third["started_at"]):
        assert moment, (first, second, third)
    assert str(first["finished_at"]) <= str(second["started_at"])
    assert str(second["finished_at"]) <= str(third["started_at"])
    assert [len(json.loads(ok(embedded.cli("--json", "runs", "list", "--pipeline", p)).output))
            for p in ("chain-b", "chain-c")] == [1, 1]

    shown = ok(embedded.cli("pipelines", "show", "chain-b")).output
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in shown.splitlines() if ":" in line}
    assert (fields["upstreams"], fields["blocked by"]) == ("chain-a", "nothing")
    refused = embedded.cli("pipelines", "delete", "chain-a", "--yes")
    assert refused.exit_code == 1
    assert "chain-b" in refused.output
    ok(embedded.cli("pipelines", "update", "chain-b", "--no-upstreams"))
    ok(embedded.cli("pipelines", "delete", "chain-a", "--yes"))


def test_a_diamond_runs_its_join_once_after_both_sides_and_a_failed_side_blocks_it(embedded: Embedded) -> None:
    # dia-a → dia-b → dia-d and dia-a → dia-c → dia-d; dia-b first reads a table that does not exist.
    for name, stream, upstreams in (("dia-a", "main.customers", ()), ("dia-b", "main.nowhere", ("dia-a",)),
                                    ("dia-c", "main.customers", ("dia-a",)),
                                    ("dia-d", "main.customers", ("dia-b", "dia-c"))):
        ok(embedded.cli("pipelines", "create", "--name", name, "--connection", "demo-shop", "--stream", stream,
                        "--namespace", name.replace("-", "_"), "--no-validate",
                        *[arg for up in upstreams for arg in ("--upstream", up)]))
    ok(embedded.cli("pipelines", "run", "dia-a", "--wait"))
    [failed_b] = _orchestrator_runs(embedded, "dia-b", lambda rs: bool(rs) and rs[0]["finished_at"])
    assert (failed_b["status"], failed_b["trigger"]) == ("failed", "dependency"), failed_b
    _orchestrator_runs(embedded, "dia-c", lambda rs: bool(rs) and rs[0]["status"] == "succeeded")
    shown = json.loads(ok(embedded.cli("--json", "pipelines", "show", "dia-d")).output)
    assert [(b["upstream_name"], b["run_id"], b["status"]) for b in shown["blocked_by"]] == [
        ("dia-b", failed_b["run_id"], "failed")]
    assert _orchestrator_runs(embedded, "dia-d", lambda rs: True) == [], "a failed upstream must block the join"

    ok(embedded.cli("pipelines", "update", "dia-b", "--stream", "main.orders"))
    ok(embedded.cli("pipelines", "run", "dia-b", "--wait"))
    [join] = _orchestrator_runs(embedded, "dia-d", lambda rs: bool(rs) and rs[0]["status"] == "succeeded")
    assert join["trigger"] == "dependency"
    b_ok, c_ok = (_orchestrator_runs(embedded, p, lambda rs: True)[0] for p in ("dia-b", "dia-c"))
    assert join["admitted_at"] >= max(b_ok["finished_at"], c_ok["finished_at"])
    time.sleep(1)
    assert len(_orchestrator_runs(embedded, "dia-d", lambda rs: True)) == 1, "the join ran twice"
    assert json.loads(ok(embedded.cli("--json", "pipelines", "show", "dia-d")).output)["blocked_by"] == []


def _orchestrator_runs(embedded: Embedded, pipeline: str, done: Callable[[list[dict[str, Any]]], bool],
                       timeout: float = 120) -> list[dict[str, Any]]:
    """The orchestrator's record of the pipeline's runs (newest first, with attempts and retry links)
    once ``done`` holds for them."""
    headers = {"Authorization": f"Bearer {embedded.token}"}
    pid = json.loads(ok(embedded.cli("--json", "pipelines", "show", pipeline)).output)["id"]
    deadline = time.monotonic() + timeout
    while True:
        runs = httpx.get(f"{embedded.process.url}/v1/pipelines/{pid}/runs", headers=headers, timeout=10).json()
        if done(runs):
            return list(runs)
        assert time.monotonic() < deadline, (runs, embedded.process.log_tail())
        time.sleep(0.3)


def test_a_transient_failure_is_retried_until_it_succeeds_and_a_config_error_is_not(
    embedded: Embedded, pg_admin_dsn: str
) -> None:
    url = create_database(pg_admin_dsn, "tidemark_e2e_retry")
    try:
        source = slow_items(url)
        add_rows(source["conninfo"], 1, 50, delay=0)
        config = source["config"]
        with flaky_proxy(str(config["host"]), int(config["port"])) as proxy:
            through = {**config, "host": "127.0.0.1", "port": proxy.port}
            ok(embedded.cli("connections", "create", "--name", "flaky-pg", "--type", "postgres",
                            *[f"--set={k}={v}" for k, v in through.items()]))
            ok(embedded.cli("pipelines", "create", "--name", "flaky", "--connection", "flaky-pg",
                            "--stream", "public.items", "--namespace", "flaky",
                            "--max-attempts", "3", "--retry-delay", "1", "--retry-max-delay", "3"))
            proxy.fail(True)  # the network drops every connection: attempts fail until it recovers
            ok(embedded.cli("pipelines", "run", "flaky"))
            # Attempt 3 waits at least 2 s (1 s doubled) after attempt 2 failed: time to recover.
            _orchestrator_runs(embedded, "flaky", lambda rs: len(rs) == 3 and rs[1]["finished_at"])
            proxy.fail(False)
            runs = _orchestrator_runs(embedded, "flaky", lambda rs: len(rs) == 3 and rs[0]["finished_at"])
        first, second, third = reversed(runs)
        assert [(r["attempt"], r["trigger"], r["status"]) for r in (first, second, third)] == [
            (1, "manual", "failed"), (2, "retry", "failed"), (3, "retry", "succeeded")]
        assert (second["retry_of"], third["retry_of"]) == (first["run_id"], second["run_id"])
        assert "is unavailable right now" in str(first["error"]), first
        for failed, retry, least in ((first, second, 1.0), (second, third, 2.0)):  # each waited its backoff
            assert _seconds(retry["admitted_at"]) - _seconds(failed["finished_at"]) >= least, (failed, retry)
        assert proxy.dropped >= 2
        shown = json.loads(ok(embedded.cli("--json", "runs", "show", third["run_id"])).output)
        assert (shown["status"], shown["rows_written"]) == ("succeeded", 50)

        # A config error (a role the server does not know) fails once and is not retried.
        ok(embedded.cli("connections", "create", "--name", "nobody-pg", "--type", "postgres",
                        *[f"--set={k}={v}" for k, v in {**config, "user": "nobody_here"}.items()]))
        ok(embedded.cli("pipelines", "create", "--name", "nobody", "--connection", "nobody-pg", "--no-validate",
                        "--stream", "public.items", "--namespace", "nobody", "--retry-delay", "0.5",
                        "--retry-max-delay", "1"))
        ok(embedded.cli("pipelines", "run", "nobody"))
        [failed] = _orchestrator_runs(embedded, "nobody", lambda rs: bool(rs) and rs[0]["finished_at"])
        time.sleep(3)  # longer than the backoff and a scheduler pass: a retry would exist by now
        [still] = _orchestrator_runs(embedded, "nobody", lambda rs: True)
        assert still == failed
        assert (failed["status"], failed["attempt"]) == ("failed", 1)
        assert "authentication failed for user 'nobody_here'" in str(failed["error"]), failed
    finally:
        drop_database(pg_admin_dsn, url)


def _seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def test_a_hubspot_pipeline_loads_what_the_account_holds_and_follows_its_changes(embedded: Embedded) -> None:
    """connection → check → discover → incremental pipeline → run → Iceberg table equal to the fake
    HubSpot account; then a property added and records updated between runs."""
    token = "pat-na1-e2e-0000-1111"
    hub = FakeHubSpot(token)
    hub.objects["contacts"] = HubSpotObject([prop("email", "string"), prop("score", "number"),
                                             prop("lastmodifieddate", "datetime")])
    start = datetime(2024, 7, 1, tzinfo=UTC)
    for i in range(1, 251):  # more than one page of the list and of the search API
        hub.put("contacts", i, email=f"c{i}@example.com", score=f"{i}.5", lastmodifieddate=start + timedelta(minutes=i))
    with serving(hub.app) as uri:
        ok(embedded.cli("connections", "create", "--name", "hubspot-e2e", "--type", "hubspot",
                        f"--set=access_token={token}", f"--set=base_url={uri}", '--set=objects=["contacts"]'))
        shown = json.loads(ok(embedded.cli("--json", "connections", "show", "hubspot-e2e")).output)
        assert token not in json.dumps(shown)
        assert "succeeded" in ok(embedded.cli("connections", "check", "hubspot-e2e")).output
        discovered = json.loads(ok(embedded.cli("--json", "connections", "discover", "hubspot-e2e")).output)
        [contacts] = discovered["streams"]
        assert contacts["primary_key"] == ["id"]
        ok(embedded.cli("pipelines", "create", "--name", "hubspot-e2e", "--connection", "hubspot-e2e",
                        "--stream", "contacts", "--mode", "incremental", "--cursor-field", "lastmodifieddate",
                        "--primary-key", "id", "--namespace", "hubspot"))
        first = json.loads(ok(embedded.cli("--json", "pipelines", "run", "hubspot-e2e", "--wait")).output)
        assert (first["status"], first["rows_written"]) == ("succeeded", 250), first
        lake = Lakehouse(LakehouseSettings().resolve(embedded.home))

        def table_rows() -> list[dict[str, object]]:
            rows = lake.catalog.load_table(first["streams"][0]["table"]).scan().to_arrow().to_pylist()
            return sorted(rows, key=lambda r: int(r["id"]))  # type: ignore[call-overload]

        def expected(columns: tuple[str, ...]) -> list[dict[str, object]]:
            out = []
            for i, values in sorted(hub.objects["contacts"].records.items()):
                row: dict[str, object] = {"id": i}
                for name in columns:
                    raw = values.get(name)
                    row[name] = None if raw is None else (
                        Decimal(raw) if name == "score" else
                        datetime.fromisoformat(raw.replace("Z", "+00:00")) if name == "lastmodifieddate" else raw)
                out.append(row)
            return out

        assert table_rows() == expected(("email", "score", "lastmodifieddate"))

        hub.objects["contacts"].properties.append(prop("tier", "enumeration"))
        hub.put("contacts", 7, tier="gold", score="99.5", lastmodifieddate=start + timedelta(days=1))
        hub.put("contacts", 251, email="new@example.com", score="1", lastmodifieddate=start + timedelta(days=1))
        second = json.loads(ok(embedded.cli("--json", "pipelines", "run", "hubspot-e2e", "--wait")).output)
        # Incremental from the stored cursor: the boundary record, the updated one, the new one are read;
        # the boundary record is unchanged in the table, so only the other two are written.
        assert (second["status"], second["rows_read"], second["rows_written"]) == ("succeeded", 3, 2), second
        assert table_rows() == expected(("email", "score", "lastmodifieddate", "tier"))


def test_a_schema_change_in_a_source_is_a_drift_event_and_one_alert(embedded: Embedded, tmp_path: Path) -> None:
    """The walk-through of docs/drift.md on the embedded platform: alter a copy of the demo database,
    watch the drift, its history and the alert reach a webhook, through the real broker."""
    shop = tmp_path / "shop.db"
    shutil.copy(sample_database("shop"), shop)
    headers = {"Authorization": f"Bearer {embedded.token}"}
    with httpx.Client(base_url=embedded.process.url, headers=headers, timeout=30) as api, \
            webhook_receiver() as receiver:
        connection = api.post("/v1/connections", json={"name": "shop-drift", "type": "sqlite",
                                                         "config": {"path": str(shop)}}).json()["id"]
        rule = api.post("/v1/alert-rules", json={"name": "shop-drift", "connection_id": connection,
                                                  "min_severity": "info", "url": receiver.url})
        assert rule.status_code == 201, rule.text
        deadline = time.monotonic() + 30
        while not api.get(f"/v1/schemas/connections/{connection}/history").json():  # the first snapshot
            assert time.monotonic() < deadline, embedded.process.log_tail()
            time.sleep(0.5)
        patched = api.patch(f"/v1/schemas/connections/{connection}", json={"poll_interval_seconds": 5})
        assert patched.status_code == 200, patched.text
        time.sleep(1)
        with sqlite3.connect(shop) as conn:
            conn.execute("ALTER TABLE orders ADD COLUMN coupon TEXT")
        deadline = time.monotonic() + 5 + 5
        while not (drifts := api.get("/v1/drift", params={"connection_id": connection}).json()):
            assert time.monotonic() < deadline, embedded.process.log_tail()
            time.sleep(0.5)
        [drift] = drifts
        assert [(c["kind"], c["stream"], c["column"]) for c in drift["changes"]] == [
            ("column_added", "main.orders", "coupon")]
        deadline = time.monotonic() + 30
        while not receiver.received:
            assert time.monotonic() < deadline, embedded.process.log_tail()
            time.sleep(0.5)
        [alert] = receiver.received
        assert alert["drift_id"] == drift["id"]
        history = api.get(f"/v1/schemas/connections/{connection}/history").json()
        assert [h["version"] for h in history] == [2, 1]


# Keep this test last in the module: it stops the platform the tests above share.
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the broker process through /proc")
def test_sigterm_stops_the_platform_as_cleanly_as_ctrl_c(embedded: Embedded) -> None:
    proc = embedded.process.proc
    assert proc.poll() is None, embedded.process.log_tail()
    children = _children(proc.pid)
    brokers = [pid for pid in children if b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(brokers) == 1, children
    before = len(embedded.process.log.read_text())

    proc.send_signal(signal.SIGTERM)  # what a process manager, `kill PID` or make passing it on sends

    assert proc.wait(timeout=60) == 0, embedded.process.log_tail()
    after = embedded.process.log.read_text()[before:]
    assert "Tidemark stopped." in after, after
    assert "Traceback" not in after, after
    assert [pid for pid in children if _alive(pid)] == [], "the broker or a worker outlived the platform"


def _succeeded_run(embedded: Embedded, pipeline: str, timeout: float = 120) -> dict[str, object]:
    """The pipeline's first run once it has succeeded (jobs-svc's view, as `runs list` shows it)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = json.loads(ok(embedded.cli("--json", "runs", "list", "--pipeline", pipeline)).output)
        if runs and runs[-1]["status"] in ("succeeded", "partially_succeeded", "failed", "cancelled"):
            assert runs[-1]["status"] == "succeeded", runs
            return dict(runs[-1])
        assert time.monotonic() < deadline, (pipeline, runs, embedded.process.log_tail())
        time.sleep(0.5)
