"""The worker spec names every secret a worker needs without holding one; the local launcher
fills them in from the service's settings, so its worker rebuilds exactly those settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from tidemark.ids import new_id
from tidemark.lakehouse import LakehouseSettings
from tidemark.lakehouse.settings import AzureSettings, S3Settings
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest.launchers import worker_spec
from tidemark_ingest.launchers.local import worker_environment
from tidemark_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

SECRETS = {
    "TIDEMARK_INTERNAL_TOKEN": "internal-tok-9f1",
    "TIDEMARK_INGEST__DATABASE__URL": "postgresql+asyncpg://ingest:db-pass-9f1@db.example.com/ingest",
    "TIDEMARK_INGEST__LAKEHOUSE__CATALOG_URI": "https://svc:uri-pass-9f1@catalog.example.com/api/catalog",
    "TIDEMARK_INGEST__LAKEHOUSE__CATALOG_CREDENTIAL": "client:cred-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__CATALOG_TOKEN": "cat-tok-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__S3__SECRET_ACCESS_KEY": "s3-secret-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__S3__SESSION_TOKEN": "s3-session-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__AZURE__ACCOUNT_KEY": "az-key-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__AZURE__SAS_TOKEN": "az-sas-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__AZURE__CONNECTION_STRING": "AccountKey=az-conn-9f1",
    "TIDEMARK_INGEST__LAKEHOUSE__PROPERTIES": '{"s3.connect-timeout": "5", "x.password": "prop-pass-9f1"}',
}
# The distinctive part of each secret: none of them may appear anywhere in a spec.
NEEDLES = ["internal-tok", "db-pass", "uri-pass", "cred-9f1", "cat-tok", "s3-secret", "s3-session", "az-key",
           "az-sas", "az-conn", "prop-pass"]


def full_settings(home: Path) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(home=home, internal_token=SecretStr("internal-tok-9f1")),
        database=DatabaseSettings(url="postgresql+asyncpg://ingest:db-pass-9f1@db.example.com/ingest"),
        bus="memory",
        lakehouse=LakehouseSettings(
            catalog_type="rest", catalog_uri="https://svc:uri-pass-9f1@catalog.example.com/api/catalog",
            warehouse="s3://lake/tidemark", catalog_credential=SecretStr("client:cred-9f1"),
            catalog_token=SecretStr("cat-tok-9f1"),
            s3=S3Settings(access_key_id="AKIDPLAIN", secret_access_key=SecretStr("s3-secret-9f1"),
                          session_token=SecretStr("s3-session-9f1")),
            azure=AzureSettings(account_name="acct", account_key=SecretStr("az-key-9f1"),
                                sas_token=SecretStr("az-sas-9f1"),
                                connection_string=SecretStr("AccountKey=az-conn-9f1")),
            properties={"s3.connect-timeout": "5", "x.password": "prop-pass-9f1"},
        ),
    )


def test_the_spec_references_every_secret_and_holds_none(tmp_path: Path) -> None:
    settings = full_settings(tmp_path)
    run_id = new_id()
    spec = worker_spec(settings, run_id)

    assert spec.command == ("tidemark-worker",)
    assert spec.args == ("run", str(run_id))
    assert spec.image == settings.worker_image
    assert {ref.name for ref in spec.secrets} == set(SECRETS)
    assert not set(spec.env) & set(SECRETS)
    # Plain values travel as they are.
    assert spec.env["TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE"] == "s3://lake/tidemark"
    assert spec.env["TIDEMARK_INGEST__LAKEHOUSE__S3__ACCESS_KEY_ID"] == "AKIDPLAIN"
    # How many streams a worker loads at once is the service's setting, also on Kubernetes.
    assert spec.env["TIDEMARK_INGEST__STREAM_CONCURRENCY"] == str(settings.stream_concurrency)
    for text in (spec.model_dump_json(), repr(spec), str(spec.model_dump())):
        leaked = [n for n in NEEDLES if n in text]
        assert not leaked, f"the worker spec holds secrets: {leaked}"


def test_the_local_launcher_resolves_the_references_into_the_workers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = full_settings(tmp_path)
    spec = worker_spec(settings, new_id())
    env = worker_environment(settings, spec)
    assert {k: env[k] for k in SECRETS} == SECRETS
    # The worker rebuilds the service's settings from that environment alone.
    for key in list(os.environ):
        if key.startswith("TIDEMARK_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("TIDEMARK_"):
            monkeypatch.setenv(key, value)
    seen = IngestSettings()
    assert seen.lakehouse == settings.lakehouse
    assert seen.database.url == settings.database.url
    assert seen.platform.internal_token == settings.platform.internal_token


def test_without_an_internal_token_none_reaches_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = IngestSettings(platform=PlatformSettings(home=tmp_path), bus="memory")
    monkeypatch.setenv("TIDEMARK_INTERNAL_TOKEN", "stale-from-the-parent")
    spec = worker_spec(settings, new_id())
    assert "TIDEMARK_INTERNAL_TOKEN" not in {ref.name for ref in spec.secrets}
    assert "TIDEMARK_INTERNAL_TOKEN" not in worker_environment(settings, spec)
