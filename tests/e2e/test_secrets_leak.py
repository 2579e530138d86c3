"""No secret leaves the platform: `tidemark up` as a process (its services, and real worker processes), a
PostgreSQL connection with a password (a server that demands it), a Jira connection with an API token (Basic
auth) and an S3 connection with keys, each checked, discovered and run; and the same with wrong secrets, whose
runs fail. Then every log line (services and workers, errors included), every event on every topic of the
platform's broker, every body of every GET route (and the Jobs pages), every file under the platform's home,
the CLI's output and the Kubernetes Job the launcher would make for these runs are searched for the secret
values in every form they travel in: plain, URL-encoded, and base64 of the Basic credentials. None may be
found."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql
from pydantic import SecretStr

from tests.e2e.processes import free_port
from tests.fixtures.embedded import Embedded, embedded_platform, ok
from tests.fixtures.password_pg import PasswordServer
from tests.integration.files_fixtures import Bucket
from tidemark.bus.kafka import client_options
from tidemark.events import RunRequested
from tidemark.lakehouse import LakehouseSettings
from tidemark.settings import DatabaseSettings, KafkaSettings, PlatformSettings
from tidemark_cli.client import Client
from tidemark_cli.demo import wait_for_run
from tidemark_ingest.launchers import worker_spec
from tidemark_ingest.launchers.k8s.manifest import job_manifest
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.fake_vendors.jira import FakeJira, system_field
from tidemark_testing.fake_vendors.server import serving

pytestmark = pytest.mark.e2e

# Characters that URL-encoding changes (so each form differs from the plain one) and long enough to be told apart.
PG_PASSWORD = "Pg-Leak/Se:cr@t %2F+1"
PG_WRONG = "Pg-Wrong/Pa:ss@w0rd+9"
JIRA_EMAIL = "leak.bot@example.com"
JIRA_TOKEN = "ATATT3xLeak+Token/Value=="
JIRA_WRONG = "ATATT3xWrong+Token/Value=="
S3_SECRET = "s3Leak/SECRET+access=key"
S3_SESSION = "s3Leak-SESSION/token+value=="
# The platform's own secrets in the settings the Job manifest is built from.
DB_PASSWORD, INTERNAL_TOKEN, LAKE_S3_SECRET = "ingest-DB/pass:w0rd", "internal-Tok/en+1", "lake-S3/secret+key"


def forms(secret: str) -> set[str]:
    return {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def basic(user: str, secret: str) -> set[str]:
    """A Basic Authorization header's credentials, and their base64 (whole, and as a header carries it)."""
    encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {f"{user}:{secret}", encoded, encoded.rstrip("=")}


SECRETS: dict[str, set[str]] = {
    "postgres password": forms(PG_PASSWORD), "wrong postgres password": forms(PG_WRONG),
    "jira token": forms(JIRA_TOKEN) | basic(JIRA_EMAIL, JIRA_TOKEN),
    "wrong jira token": forms(JIRA_WRONG) | basic(JIRA_EMAIL, JIRA_WRONG),
    "s3 secret key": forms(S3_SECRET), "s3 session token": forms(S3_SESSION),
}


def leaks(where: str, text: str, secrets: dict[str, set[str]] = SECRETS) -> list[str]:
    """Where each secret form appears in ``text``, with a little context, the secret itself masked."""
    found = []
    for label, variants in secrets.items():
        for variant in sorted(variants, key=len, reverse=True):
            for hit in re.finditer(re.escape(variant), text):
                context = text[max(0, hit.start() - 80): hit.end() + 40].replace(variant, f"<{label}>")
                found.append(f"{where}: {label}: …{context}…")
    return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    # Six workers start at once here; on a loaded machine that can take longer than the default minute.
    with embedded_platform(tmp_path_factory.mktemp("leak-home"), demo=False,
                           env={"TIDEMARK_INGEST__HEARTBEAT_TIMEOUT_SECONDS": "300",
                                # Every line, as an operator chasing a problem would have it: the process
                                # logs at its first service's level, workers at ingest-svc's.
                                "TIDEMARK_CONNECTOR__LOG_LEVEL": "DEBUG",
                                "TIDEMARK_INGEST__LOG_LEVEL": "DEBUG"}) as running:
        yield running


@pytest.fixture
def jira_site() -> Iterator[str]:
    site = FakeJira(JIRA_EMAIL, JIRA_TOKEN)
    site.fields = [system_field("summary", "Summary", "string"), system_field("updated", "Updated", "datetime")]
    for n in range(1, 4):
        site.put_issue(10_000 + n, f"LEAK-{n}", summary=f"issue {n}", updated=f"2024-07-0{n}T10:00:00.000+0000")
    with serving(site.app) as uri:
        yield uri


def source_database(server: PasswordServer) -> str:
    name = f"leak_{uuid.uuid4().hex[:10]}"
    server.database_with_owner(name, PG_PASSWORD)
    with server.admin(name) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(name)))  # the owner's table
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10, 2), updated_at timestamptz)")
        conn.execute("INSERT INTO orders SELECT g, g * 1.5, now() FROM generate_series(1, 20) g")
    return name


async def every_event(bootstrap_servers: str, prefix: str = "tidemark.") -> dict[str, list[bytes]]:
    """Every message (key and value, raw bytes) of every topic of the platform, from the first retained."""
    consumer = AIOKafkaConsumer(**client_options(KafkaSettings(bootstrap_servers=bootstrap_servers), "leak-scan"),
                                group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out: dict[str, list[bytes]] = {}
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        assigned = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
        while remaining:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                out.setdefault(tp.topic, []).extend((m.key or b"") + b" " + (m.value or b"") for m in messages)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return out


def get_bodies(platform: Embedded, ids: dict[str, set[str]]) -> dict[str, str]:
    """The body of every GET route the platform documents, each path parameter filled with every known id
    of its kind; and the Jobs pages (signed in). The internal config route, which hands a worker the
    decrypted config on the internal token, is the one route meant to carry secrets: left out."""
    bodies: dict[str, str] = {}
    auth = {"Authorization": f"Bearer {platform.token}"}
    with httpx.Client(base_url=platform.process.url, headers=auth, timeout=60) as client:
        paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items()
                 if "get" in ops and not p.startswith("/internal/")]
        paths += ["/jobs", "/jobs/runs/{run_id}", "/jobs/runs/{run_id}/log", "/metrics"]
        client.cookies.set("tidemark_token", platform.token)
        for path in paths:
            urls = [path]
            for name in re.findall(r"{(\w+)}", path):
                urls = [u.replace(f"{{{name}}}", value) for u in urls for value in sorted(ids.get(name, {"none"}))]
            for url in urls:
                response = client.get(url)
                assert response.status_code < 500, (url, response.text)
                bodies[f"GET {url}"] = response.text
    return bodies


def job_manifests(requested: list[RunRequested]) -> dict[str, str]:
    """The batch/v1 Job the Kubernetes launcher would create for each of these runs, from settings that
    hold the platform's own secrets."""
    settings = IngestSettings(
        platform=PlatformSettings(internal_token=SecretStr(INTERNAL_TOKEN)),
        database=DatabaseSettings(url=f"postgresql+asyncpg://ingest:{quote(DB_PASSWORD, safe='')}@db/ingest"),
        lakehouse=LakehouseSettings(warehouse="s3://lake/warehouse",
                                    s3={"access_key_id": "AKIALEAK", "secret_access_key": SecretStr(LAKE_S3_SECRET)}),
        launcher="kubernetes", worker_image="registry.example.com/tidemark:1", kubernetes={"worker_secret": "tm"})
    return {f"Job of run {r.run_id}": json.dumps(job_manifest(worker_spec(settings, r.run_id, r), settings.kubernetes,
                                                             "tidemark", 10))
            for r in requested}


def test_no_secret_reaches_logs_events_api_files_or_job_manifests(
        platform: Embedded, password_server: PasswordServer, jira_site: str, moto_endpoint: str,
        s3_bucket: str) -> None:
    database = source_database(password_server)
    bucket = Bucket(moto_endpoint, s3_bucket)
    bucket.put("exports/orders/a.csv", "id,amount\n1,10.5\n2,3\n")
    pg = {"host": "127.0.0.1", "port": password_server.port, "user": database, "database": database}
    s3 = bucket.config([{"name": "orders", "glob": "orders/*.csv", "format": "csv"}], prefix="exports",
                       access_key_id="AKIALEAKTEST", secret_access_key=S3_SECRET, session_token=S3_SESSION)
    jira = {"base_url": jira_site, "email": JIRA_EMAIL}
    connections: dict[str, tuple[str, dict[str, Any], str]] = {  # name: type, config, stream
        "pg-good": ("postgres", {**pg, "password": PG_PASSWORD}, "public.orders"),
        "pg-wrong": ("postgres", {**pg, "password": PG_WRONG}, "public.orders"),
        "jira-good": ("jira", {**jira, "api_token": JIRA_TOKEN}, "issues"),
        "jira-wrong": ("jira", {**jira, "api_token": JIRA_WRONG}, "issues"),
        "s3-good": ("s3", s3, "orders"),
        "s3-unreachable": ("s3", {**s3, "endpoint": f"http://127.0.0.1:{free_port()}"}, "orders"),
    }
    outputs: dict[str, str] = {}
    run_ids: dict[str, str] = {}
    for name, (kind, config, stream) in connections.items():
        created = platform.cli("connections", "create", "--name", name, "--type", kind, "--config", json.dumps(config))
        assert created.exit_code == 0, created.output
        good = name.endswith("-good")
        outputs[f"create {name}"] = created.output
        check = platform.cli("connections", "check", name)
        outputs[f"check {name}"] = check.output
        assert ("succeeded" in check.output) is good, check.output
        outputs[f"discover {name}"] = platform.cli("--json", "connections", "discover", name).output
        pipeline = platform.cli("pipelines", "create", "--name", name, "--connection", name, "--stream", stream,
                                "--namespace", name.replace("-", "_"), *([] if good else ["--no-validate"]))
        assert pipeline.exit_code == 0, pipeline.output
        # All runs at once: their workers overlap.
        run_ids[name] = json.loads(ok(platform.cli("--json", "pipelines", "run", name)).output)["run_id"]
    runs: dict[str, dict[str, Any]] = {}
    client = Client(platform.process.url, platform.token)
    try:
        for name, run_id in run_ids.items():
            runs[name] = wait_for_run(client, run_id, timeout=300)
            expected = "succeeded" if name.endswith("-good") else "failed"
            assert runs[name]["status"] == expected, (name, runs[name]["error"])
            outputs[f"runs show {name}"] = platform.cli("runs", "show", run_id).output
            outputs[f"runs logs {name}"] = platform.cli("runs", "logs", run_id).output
    finally:
        client.close()
    # The failures say what went wrong (so the scan below looks at real error messages).
    assert "authentication failed" in runs["pg-wrong"]["error"], runs["pg-wrong"]
    assert "api_token" in runs["jira-wrong"]["error"], runs["jira-wrong"]
    assert "cannot reach" in runs["s3-unreachable"]["error"], runs["s3-unreachable"]

    events = asyncio.run(every_event(platform.bootstrap_servers))
    requested = [RunRequested.model_validate(json.loads(raw[raw.index(b"{"):])["data"])
                 for raw in events["tidemark.runs"] if b'"run.requested"' in raw]
    assert {str(r.run_id) for r in requested} >= {r["run_id"] for r in runs.values()}
    ids = {
        "connection_id": {c["id"] for c in json.loads(platform.cli("--json", "connections", "list").output)},
        "pipeline_id": {p["id"] for p in json.loads(platform.cli("--json", "pipelines", "list").output)},
        "run_id": {r["run_id"] for r in runs.values()},
        "table": {s["table"] for r in runs.values() for s in r.get("streams", []) if s.get("table")},
    }
    bodies = get_bodies(platform, ids)
    drifts = {d["id"] for d in json.loads(bodies["GET /v1/drift"])}
    if drifts:  # schema-svc saw a change meanwhile: read each one too
        bodies |= get_bodies(platform, {**ids, "drift_id": drifts})
    assert any(k.startswith("GET /v1/runs/") and k.endswith("/logs") for k in bodies)

    found: list[str] = []
    for topic, messages in events.items():
        for raw in messages:
            found += leaks(f"event on {topic}", raw.decode(errors="replace"))
    for where, text in {**bodies, **outputs}.items():
        found += leaks(where, text)
    for path in sorted(p for p in platform.home.rglob("*") if p.is_file()):
        found += leaks(f"file {path.relative_to(platform.home)}", path.read_bytes().decode(errors="replace"))
    platform_secrets = {"ingest database password": forms(DB_PASSWORD), "internal token": forms(INTERNAL_TOKEN),
                        "lakehouse s3 key": forms(LAKE_S3_SECRET)}
    for where, manifest in job_manifests(requested).items():
        found += leaks(where, manifest, SECRETS | platform_secrets)
    assert not found, "\n".join(found)
    # The scan finds what it looks for: the one route that hands a worker the decrypted config does hold them.
    internal = {"Authorization": f"Bearer {(platform.home / 'internal_token').read_text().strip()}"}
    for name, label in [("pg-good", "postgres password"), ("jira-good", "jira token"), ("s3-good", "s3 session token")]:
        config = httpx.get(f"{platform.process.url}/internal/v1/connections/{runs[name]['connection_id']}/config",
                           headers=internal, timeout=30).text
        assert any(f": {label}: " in hit for hit in leaks("internal config", config)), (name, label)
    # The scan saw what it claims to: the workers' logs, the failures, the events of every run.
    log = platform.process.log.read_text(errors="replace")
    assert "stream loaded" in log
    assert "authentication failed" in log
    assert len(events["tidemark.runs"]) > 10
    assert "tidemark.connections" in events
