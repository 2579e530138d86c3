"""Two orchestrator processes on one PostgreSQL database, one of them killed with SIGKILL again and
again at different moments of the schedule's ticks (and restarted), with real ingest-svc workers
running the runs over the real broker: every tick still becomes exactly one run, requested once,
and none is skipped (``catchup: all``, so a tick that waits behind a slow run still fires)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.e2e.processes import ServiceProcess, free_port, service_argv, spawn, wait_healthy

pytestmark = pytest.mark.e2e
API_TOKEN = "kill-api-token"
EVERY = 10  # seconds between ticks (divides a minute): more than a run of this small table takes
KILLS = 3  # each at another moment of a tick


def start(service: str, env: dict[str, str], logs: Path, name: str | None = None) -> ServiceProcess:
    port = free_port()
    return spawn(service_argv(service, port), name or service, port, env, logs)


@dataclass
class Services:
    started: dict[str, ServiceProcess]
    orchestrator_env: dict[str, str]
    orchestrator_db: str


@pytest.fixture
def services(kafka_bootstrap: str, pg_database: Callable[[], str], tmp_path: Path) -> Iterator[Services]:
    prefix = f"kill{uuid.uuid4().hex[:8]}"
    common = {"TIDEMARK_HOME": str(tmp_path), "TIDEMARK_API_TOKEN": API_TOKEN,
              "TIDEMARK_INTERNAL_TOKEN": "kill-internal-token"}

    def env(service: str, database: str) -> dict[str, str]:
        upper = service.upper()
        return {**common, f"TIDEMARK_{upper}__DATABASE__URL": database,
                f"TIDEMARK_{upper}__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                f"TIDEMARK_{upper}__KAFKA__TOPIC_PREFIX": prefix,
                f"TIDEMARK_{upper}__KAFKA__SESSION_TIMEOUT_MS": "6000",
                f"TIDEMARK_{upper}__KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
                f"TIDEMARK_{upper}__OUTBOX_POLL_SECONDS": "0.2", f"TIDEMARK_{upper}__LOG_FORMAT": "text"}

    logs = tmp_path / "logs"
    started: dict[str, ServiceProcess] = {}
    try:
        connector = start("connector", {**env("connector", pg_database()),
                                        "TIDEMARK_CONNECTOR__SECRET_KEY": Fernet.generate_key().decode()}, logs)
        started["connector"] = connector
        orchestrator_db = pg_database()
        orchestrator_env = {**env("orchestrator", orchestrator_db),
                            "TIDEMARK_ORCHESTRATOR__CONNECTOR_URL": connector.url,
                            "TIDEMARK_ORCHESTRATOR__SCHEDULER_POLL_SECONDS": "0.2"}
        started["ingest"] = start("ingest", {
            **env("ingest", pg_database()), "TIDEMARK_INGEST__CONNECTOR_URL": connector.url,
            "TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE": f"file://{tmp_path / 'warehouse'}"}, logs)
        started["a"] = start("orchestrator", orchestrator_env, logs, "orchestrator-a")
        started["b"] = start("orchestrator", orchestrator_env, logs, "orchestrator-b-0")
        for process in started.values():
            wait_healthy(process)
        yield Services(started, orchestrator_env, orchestrator_db)
    finally:
        for process in started.values():
            process.stop()


def sync_url(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql+psycopg")


def test_every_tick_fires_once_while_an_orchestrator_is_killed_mid_tick(
    services: Services, tmp_path: Path
) -> None:
    started = services.started
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(headers=headers, timeout=30) as http:
        created = http.post(started["connector"].url + "/v1/connections", json={
            "name": "shop", "type": "sqlite", "config": {"path": "sample:shop"}})
        assert created.status_code == 201, created.text
        pipeline = http.post(started["a"].url + "/v1/pipelines", json={
            "name": "every-10s", "connection_id": created.json()["id"], "streams": [{"name": "main.customers"}],
            "destination": {"namespace": "kill"}, "catchup": "all", "retries": {"max_attempts": 1},
            "schedule": {"cron": f"* * * * * */{EVERY}"}})
        assert pipeline.status_code == 201, pipeline.text
        pid = pipeline.json()["id"]

    b = started["b"]
    began = datetime.now().astimezone()
    kills = 0
    while kills < KILLS:
        # Kill at a different moment of the tick each time: 0.0, 2.7, 5.4 s after a tick.
        phase = (kills * 2.7) % EVERY
        time.sleep((phase - time.time() % EVERY) % EVERY)
        b.proc.kill()
        b.proc.wait()
        kills += 1
        b = start("orchestrator", services.orchestrator_env, tmp_path / "logs", f"orchestrator-b-{kills}")
        started[f"b{kills}"] = b
        wait_healthy(b)
    # Quick restarts can fit every kill into one or two ticks: keep both replicas going until the
    # window holds a tick per kill at least.
    long_enough = began + timedelta(seconds=(KILLS + 0.5) * EVERY)
    time.sleep(max(0.0, (long_enough - datetime.now().astimezone()).total_seconds()))
    ended = datetime.now().astimezone()

    engine = sa.create_engine(sync_url(services.orchestrator_db))
    window = {"pid": uuid.UUID(pid), "began": began, "ended": ended}
    try:
        # Ticks that piled up behind a slow run fire in turn (catchup: all): wait until all have ended.
        settle = time.monotonic() + 120
        while True:
            with engine.connect() as conn:
                runs = conn.execute(sa.text(
                    "SELECT id, scheduled_for, status FROM runs WHERE pipeline_id = :pid AND scheduled_for > :began "
                    "AND scheduled_for <= :ended ORDER BY scheduled_for"), window).all()
            if all(r.status in ("succeeded", "partially_succeeded", "failed", "cancelled") for r in runs):
                break
            assert time.monotonic() < settle, [(r.id, r.scheduled_for, r.status) for r in runs
                                               if r.status not in ("succeeded", "failed", "cancelled")]
            time.sleep(0.5)
        with engine.connect() as conn:
            envelopes = [json.loads(e) for e in conn.execute(sa.text("SELECT envelope FROM outbox")).scalars()]
    finally:
        engine.dispose()

    ticks = [r.scheduled_for for r in runs]
    assert len(ticks) >= KILLS
    first = began.replace(microsecond=0) + timedelta(seconds=EVERY - began.second % EVERY)
    expected = list(itertools.takewhile(lambda t: t <= ended, (first + timedelta(seconds=EVERY * i)
                                                                 for i in itertools.count())))
    assert ticks == expected, "a tick was skipped or doubled"
    assert {r.status for r in runs} == {"succeeded"}, [(r.scheduled_for, r.status) for r in runs]
    requested = [e["data"]["run_id"] for e in envelopes if e["type"] == "run.requested"]
    ours = {str(r.id) for r in runs}
    counts = {run_id: requested.count(run_id) for run_id in ours}
    assert set(counts.values()) == {1}, f"requested other than once: {counts}"
