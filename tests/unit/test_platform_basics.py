"""Settings safety, token handling, envelopes and contract export: things every service relies on."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tidemark.access import Scope, TokenRegistry, digest, scope_for_method
from tidemark.errors import ConfigError, TerminalError
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


def test_tokens_are_kept_as_digests_and_carry_their_scope(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# mounted secret\nfrom-file\nfiled:read:scoped-in-file\n")
    registry = TokenRegistry.from_settings([(
        AuthSettings(tokens=[SecretStr("plain"), SecretStr("bot:write:scoped")],
                     token_hashes=[digest("hashed"), f"audit:read:{digest('hashed-read')}"], tokens_file=token_file),
        PlatformSettings(api_token=SecretStr("shared")),
    )])
    assert all(len(t.digest) == 64 for t in registry.configured)
    assert "plain" not in {t.digest for t in registry.configured}
    scopes = {good: registry.authenticate(good) for good in
              ("plain", "hashed", "from-file", "shared", "scoped", "hashed-read", "scoped-in-file")}
    assert {k: (p.name, p.scope) for k, p in scopes.items() if p is not None} == {
        "plain": ("auth.tokens[0]", Scope.ADMIN), "hashed": ("auth.token_hashes[0]", Scope.ADMIN),
        "from-file": ("tokens:2", Scope.ADMIN), "shared": ("platform.api_token", Scope.ADMIN),
        "scoped": ("bot", Scope.WRITE), "hashed-read": ("audit", Scope.READ), "scoped-in-file": ("filed", Scope.READ),
    }
    for wrong in ("wrong", "bot:write:scoped", ""):
        assert registry.authenticate(wrong) is None


def test_scopes_include_the_ones_below_and_methods_choose_theirs() -> None:
    assert Scope.ADMIN.allows(Scope.WRITE)
    assert Scope.WRITE.allows(Scope.READ)
    assert not Scope.READ.allows(Scope.WRITE)
    assert not Scope.WRITE.allows(Scope.ADMIN)
    assert scope_for_method("GET") == scope_for_method("head") == Scope.READ
    assert {scope_for_method(m) for m in ("POST", "PUT", "PATCH", "DELETE")} == {Scope.WRITE}


def test_unreadable_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokens_file"):
        TokenRegistry.from_settings([(AuthSettings(tokens_file=tmp_path / "absent"), PlatformSettings())])
    bad = tmp_path / "bad"
    bad.write_text("ok:read:fine\nbot:read:sha256:not-hex\n")
    with pytest.raises(ConfigError, match="bad:2: token 'bot' is not a SHA-256 hex digest"):
        TokenRegistry.from_settings([(AuthSettings(tokens_file=bad), PlatformSettings())])


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
