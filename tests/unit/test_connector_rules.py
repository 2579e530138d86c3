"""connector-svc's settings, key handling and config rules, called directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from tidemark.connectors.boundary import scrub
from tidemark.errors import ConfigError
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_connector.crypto import SecretBox, load_secret_key
from tidemark_connector.logic import merge
from tidemark_connector.settings import ConnectorSettings

pytestmark = pytest.mark.unit
PG = DatabaseSettings(url="postgresql+asyncpg://u@h/db")


def test_production_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ValidationError, match="secret_key") as caught:
        ConnectorSettings(
            platform=PlatformSettings(environment="production", api_token=SecretStr("t")), database=PG
        )
    assert "TIDEMARK_CONNECTOR__SECRET_KEY" in str(caught.value)


def test_production_with_a_key_is_fine_and_settings_errors_never_echo_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("TIDEMARK_CONNECTOR__SECRET_KEY", key)
    monkeypatch.setenv("TIDEMARK_ENVIRONMENT", "production")
    monkeypatch.setenv("TIDEMARK_API_TOKEN", "t")
    monkeypatch.setenv("TIDEMARK_CONNECTOR__DATABASE__URL", PG.url)
    settings = ConnectorSettings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == key
    monkeypatch.setenv("TIDEMARK_CONNECTOR__CHECK_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValidationError) as caught:
        ConnectorSettings()
    assert key not in str(caught.value)


def test_a_malformed_key_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="secret_key: not a Fernet key") as caught:
        SecretBox(SecretStr("hunter2"))
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"previous_secret_keys\[0\]"):
        SecretBox(SecretStr(Fernet.generate_key().decode()), [SecretStr("old")])


def test_the_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    settings = ConnectorSettings(platform=PlatformSettings(home=tmp_path / "h"))
    first = load_secret_key(settings)
    path = tmp_path / "h" / "secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(settings).get_secret_value() == first.get_secret_value()
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]
    box = SecretBox(first)
    assert box.decrypt(box.encrypt({"password": "p"})) == {"password": "p"}


def test_merge_keeps_secrets_sent_back_masked() -> None:
    stored = {"host": "a", "password": "p", "port": 1}
    merged = merge(stored, {"host": "b", "password": "**********"}, ["password"])
    assert merged == {"host": "b", "password": "p", "port": 1}
    # The mask is only special for secret fields.
    assert merge(stored, {"host": "**********"}, ["password"])["host"] == "**********"


def test_scrub_removes_secrets_in_plain_and_url_encoded_form() -> None:
    message = "login p@ss/wd failed for postgresql://u:p%40ss%2Fwd@h/db"
    assert scrub(message, ["p@ss/wd", ""]) == "login ********** failed for postgresql://u:**********@h/db"
    assert len(scrub("x" * 5000, [])) == 1000
