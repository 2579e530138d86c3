"""``tidemark runs list|show|logs`` against a real jobs-svc on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.fixtures.jobs import TOKEN, JobsServer, Pipeline
from tidemark.events import LogRecord, RunError, RunLogged, RunScheduled, RunStatus
from tidemark_cli.main import cli

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JobsServer]:
    with JobsServer(tmp_path) as running:
        yield running


def tidemark(server: JobsServer, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--url", server.url, "--token", TOKEN, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_runs_list_filters_and_pages(server: JobsServer) -> None:
    orders, crm = Pipeline("shop-orders"), Pipeline("crm")
    ok, bad = uuid.uuid4(), uuid.uuid4()
    server.deliver(orders.queued(ok), orders.started(ok), orders.finished(ok), at=T0)
    server.deliver(crm.queued(bad, "schedule"), crm.started(bad),
                   crm.finished(bad, RunStatus.FAILED, error=RunError(message="gone", kind="transient")),
                   at=T0 + timedelta(hours=1))

    listed = json.loads(tidemark(server, "--json", "runs", "list", "--status", "failed").output)
    assert [r["run_id"] for r in listed] == [str(bad)]
    assert [r["run_id"] for r in json.loads(tidemark(server, "--json", "runs", "list", "--search", "SHOP").output)] \
        == [str(ok)]
    assert [r["run_id"] for r in json.loads(tidemark(server, "--json", "runs", "list", "--trigger", "schedule",
                                                     "--started-after", "2026-12-05T12:30:00").output)] == [str(bad)]
    text = tidemark(server, "runs", "list", "--limit", "1").output
    assert "totals: 1 succeeded, 1 failed" in text
    cursor = text.split("next page: --cursor ")[1].strip()
    second = json.loads(tidemark(server, "--json", "runs", "list", "--limit", "1", "--cursor", cursor).output)
    assert [r["run_id"] for r in second] == [str(ok)]


def test_runs_show_prints_the_timeline_streams_and_hint(server: JobsServer) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    server.deliver(p.queued(run_id, reason="waiting for a slot"), at=T0)
    server.deliver(p.started(run_id), at=T0 + timedelta(seconds=4))
    server.deliver(p.finished(run_id, RunStatus.FAILED, error=RunError(message="no such column: x", kind="config")),
                   at=T0 + timedelta(seconds=9))
    out = tidemark(server, "runs", "show", str(run_id)).output
    assert "Timeline" in out
    assert "waiting for a slot" in out
    assert "worker 4242 started" in out
    assert "2026-12-05 12:00:04" in out
    assert "fix the connection or pipeline setting" in " ".join(out.split())
    assert "CURSOR" in out  # an incremental stream shows where its cursor started and ended
    shown = json.loads(tidemark(server, "--json", "runs", "show", str(run_id)).output)
    assert shown["error_detail"]["kind"] == "config"


def test_runs_logs_follows_a_live_run_to_its_end(server: JobsServer) -> None:
    p, run_id = Pipeline(), uuid.uuid4()
    server.deliver(p.queued(run_id), p.started(run_id),
                   RunLogged(run_id=run_id, pipeline_id=p.pipeline_id, records=[
                       LogRecord(seq=0, at=T0, level="info", logger="w", message="reading main.orders",
                                 fields={"stream": "main.orders"})]))

    def later() -> None:
        time.sleep(1.0)
        server.deliver(RunLogged(run_id=run_id, pipeline_id=p.pipeline_id, records=[
            LogRecord(seq=1, at=T0, level="error", logger="w", message="source went away")]),
            p.finished(run_id, RunStatus.FAILED, error=RunError(message="source went away", kind="transient")))

    feeder = threading.Thread(target=later)
    feeder.start()
    started = time.monotonic()
    out = tidemark(server, "runs", "logs", str(run_id), "--follow", "--poll", "0.2").output
    feeder.join()
    assert time.monotonic() - started >= 0.9  # it waited for the run to end
    lines = out.splitlines()
    assert "INFO" in lines[0]
    assert "reading main.orders" in lines[0]
    assert "stream=main.orders" in lines[0]
    assert "ERROR" in lines[1]
    assert "source went away" in lines[1]
    upcoming = uuid.uuid4()
    server.deliver(RunScheduled(run_id=upcoming, pipeline_id=p.pipeline_id, pipeline_name=p.name,
                                scheduled_for=T0 + timedelta(days=1)))
    assert tidemark(server, "runs", "logs", str(upcoming)).output == ""  # no log yet: nothing, no error
