from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from tidemark.settings import ServiceSettings


class ConnectorSettings(ServiceSettings):
    """Settings of connector-svc; env prefix ``TIDEMARK_CONNECTOR__``."""

    service_name: ClassVar[str] = "connector"
    # Errors must never echo a key back, so validation errors leave inputs out.
    model_config = SettingsConfigDict(
        env_prefix="TIDEMARK_CONNECTOR__",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key (32 url-safe base64-encoded bytes) that encrypts connection secrets; "
            "generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`. "
            "Unset outside production: read from, or created once in, `<home>/secret.key`."
        ),
    )
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "Older Fernet keys still accepted for decryption while rotating `secret_key`; while any are "
            "set, each replica re-encrypts every stored secret with `secret_key` at start-up (also "
            "`tidemark-connector-svc rotate-keys`), after which they can be dropped (docs/deploy.md)."
        ),
    )
    check_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How long a connection check may take before it fails."
    )
    discover_timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="How long discovering a source's catalog may take."
    )

    @model_validator(mode="after")
    def _key_in_production(self) -> Self:
        if self.platform.environment == "production" and self.secret_key is None:
            raise ValueError(
                "secret_key: production needs an explicit Fernet key (TIDEMARK_CONNECTOR__SECRET_KEY); "
                "a key generated on local disk would be lost with the pod"
            )
        return self
