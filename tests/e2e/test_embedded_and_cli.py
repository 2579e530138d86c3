"""`make run` in miniature: `tidemark up --demo` as a process, then the CLI against it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.e2e.processes import ServiceProcess, free_port, spawn, wait_healthy
from tidemark_cli.main import cli

pytestmark = pytest.mark.e2e


@dataclass
class Embedded:
    process: ServiceProcess
    home: Path
    token: str

    def cli(self, *args: str, token: str | None = None) -> Result:
        base = ["--url", self.process.url, "--token", self.token if token is None else token]
        return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    home = tmp_path_factory.mktemp("embedded-home")
    port = free_port()
    argv = [sys.executable, "-c", "from tidemark_cli.main import cli; cli()",
            "up", "--port", str(port), "--home", str(home), "--demo"]
    # No KAFKA_BOOTSTRAP_SERVERS and no token: like a new user, it starts its own broker and makes a token.
    process = spawn(argv, "embedded", port, {}, home / "logs")
    try:
        wait_healthy(process, "/readyz")
        deadline = time.monotonic() + 120
        while "Demo run" not in process.log.read_text(errors="replace"):
            assert process.proc.poll() is None, process.log_tail()
            assert time.monotonic() < deadline, process.log_tail()
            time.sleep(0.5)
        yield Embedded(process, home, (home / "token").read_text().strip())
    finally:
        process.stop()


def test_demo_run_succeeds_and_says_where_to_look(embedded: Embedded) -> None:
    log = embedded.process.log.read_text()
    assert "succeeded: demo.customers (200 rows), demo.orders (1000 rows)" in log, log[-3000:]
    assert f"API token: {embedded.token}" in log
    assert (embedded.home / "token").stat().st_mode & 0o777 == 0o600
    assert (embedded.home / "warehouse").is_dir()


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
