"""Settings safety, token handling, envelopes and contract export: things every service relies on."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from fastapi import Request
from pydantic import SecretStr, ValidationError

from tidemark.api.auth import TokenVerifier, digest
from tidemark.errors import AuthenticationError, ConfigError, TerminalError
from tidemark.events import ConnectionChanged, Envelope, RunFinished, RunStatus
from tidemark.events.export import export_schemas
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_jobs.settings import JobsSettings

pytestmark = pytest.mark.unit


def test_default_database_is_sqlite_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path))
    settings = JobsSettings()
    assert settings.database.url == f"sqlite+aiosqlite:///{tmp_path}/jobs.db"


def test_service_env_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_JOBS__DATABASE__URL", "postgresql+asyncpg://db/jobs")
    monkeypatch.setenv("TIDEMARK_JOBS__KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("TIDEMARK_ORCHESTRATOR__DATABASE__URL", "postgresql+asyncpg://db/other")
    settings = JobsSettings()
    assert settings.database.url == "postgresql+asyncpg://db/jobs"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"


def test_production_refuses_sqlite_and_missing_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SQLite"):
        JobsSettings()
    with pytest.raises(ValidationError, match="API token"):
        JobsSettings(database=DatabaseSettings(url="postgresql+asyncpg://db/jobs"))
    ok = JobsSettings(database=DatabaseSettings(url="postgresql+asyncpg://db/jobs"),
                      auth=AuthSettings(tokens=[SecretStr("t")]))
    assert ok.platform.environment == "production"


def _request(header: str | None) -> Request:
    headers = [(b"authorization", header.encode())] if header is not None else []
    return Request({"type": "http", "headers": headers})


def test_tokens_are_kept_as_digests_and_checked(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# mounted secret\nfrom-file\n")
    verifier = TokenVerifier.for_api(
        AuthSettings(tokens=[SecretStr("plain")], token_hashes=[digest("hashed")], tokens_file=token_file),
        PlatformSettings(api_token=SecretStr("shared")),
    )
    assert "plain" not in verifier.digests
    for good in ("plain", "hashed", "from-file", "shared"):
        verifier.check(_request(f"Bearer {good}"))
    with pytest.raises(AuthenticationError, match="Invalid"):
        verifier.check(_request("Bearer wrong"))
    with pytest.raises(AuthenticationError, match="Missing"):
        verifier.check(_request(None))
    with pytest.raises(AuthenticationError, match="Missing"):
        verifier.check(_request("Basic plain"))


def test_unreadable_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokens_file"):
        TokenVerifier.for_api(AuthSettings(tokens_file=tmp_path / "absent"), PlatformSettings())


def test_envelope_round_trip_and_typed_payload() -> None:
    payload = RunFinished(run_id=uuid.uuid4(), pipeline_id=uuid.uuid4(), status=RunStatus.FAILED)
    envelope = Envelope.wrap(payload, source="ingest-svc")
    assert envelope.subject == str(payload.run_id)
    assert envelope.id.version == 7
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert again.payload_as(RunFinished) == payload
    with pytest.raises(TerminalError, match=r"expected connection\.changed"):
        again.payload_as(ConnectionChanged)


def test_exported_contracts_are_json_schemas(tmp_path: Path) -> None:
    paths = export_schemas(tmp_path)
    names = {p.name for p in paths}
    assert "run.finished.v1.schema.json" in names
    assert "envelope.schema.json" in names
    schema = json.loads((tmp_path / "run.requested.v1.schema.json").read_text())
    assert schema["x-tidemark"] == {"type": "run.requested", "topic": "runs", "schema_version": 1}
    assert "run_id" in schema["required"]


def test_committed_contracts_match_the_code(tmp_path: Path) -> None:
    """docs/contracts is what other platforms read: it must be regenerated (`make contracts`) on change."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "contracts"
    for path in export_schemas(tmp_path):
        assert (committed / path.name).read_text() == path.read_text(), f"run `make contracts` ({path.name})"
