"""connector-svc's rules on configs and secrets, as plain functions tests call directly."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tidemark.connectors import ConnectorConfig, Source, get_connector
from tidemark.connectors.egress import EgressPolicy, refused_endpoints
from tidemark.errors import ConfigError
from tidemark.settings import PlatformSettings
from tidemark_connector.crypto import SecretBox
from tidemark_connector.models import Connection
from tidemark_connector.schemas import MASK, ConnectionOut


class InvalidRequestError(ConfigError):
    """A request body the connector refuses; answered like FastAPI's own validation errors."""

    problem_type = "validation"
    title = "Invalid request"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def connector_class(type_name: str) -> type[Source]:
    try:
        return get_connector(type_name)
    except ConfigError as exc:
        error = {"field": "type", "message": exc.message, "type": "unknown_connector"}
        raise InvalidRequestError([error]) from exc


def parse_config(source: type[Source], raw: dict[str, Any]) -> ConnectorConfig:
    """Validate ``raw`` against the connector's config model; errors name ``config.<field>``."""
    try:
        return source.config_model.model_validate(raw)
    except ValidationError as exc:
        # Messages only: pydantic's `input` would echo a secret back to the client.
        errors = [
            {"field": ".".join(["config", *map(str, e["loc"])]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise InvalidRequestError(errors) from exc


def check_egress(config: ConnectorConfig, platform: PlatformSettings) -> None:
    """Refuse a config whose URLs point where sources may not go (blocking: resolves host names)."""
    refused = refused_endpoints(config.endpoints(), EgressPolicy.from_settings(platform))
    if refused:
        raise InvalidRequestError([
            {"field": f"config.{exc.detail['field']}", "message": exc.message, "type": "endpoint_refused"}
            for exc in refused
        ])


def split(config: ConnectorConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config as (non-secret fields, secret fields), both plain JSON."""
    revealed = config.reveal()
    secret_names = set(config.secret_fields())
    public = {k: v for k, v in revealed.items() if k not in secret_names}
    secrets = {k: v for k, v in revealed.items() if k in secret_names}
    return public, secrets


def seal(box: SecretBox, config: ConnectorConfig) -> tuple[dict[str, Any], str]:
    public, secrets = split(config)
    return public, box.encrypt(secrets)


def revealed_config(box: SecretBox, connection: Connection) -> dict[str, Any]:
    return {**connection.config, **box.decrypt(connection.secrets)}


def load_config(box: SecretBox, connection: Connection) -> tuple[type[Source], ConnectorConfig]:
    """The stored connection as a validated config of its connector."""
    source = get_connector(connection.connector_type)
    try:
        config = source.config_model.model_validate(revealed_config(box, connection))
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
        raise ConfigError(
            f"connection {connection.name!r}: its stored config no longer fits connector "
            f"{connection.connector_type!r} ({fields}); update it",
            field="config",
        ) from exc
    return source, config


def merge(stored: dict[str, Any], changes: dict[str, Any], secret_fields: list[str]) -> dict[str, Any]:
    """``changes`` applied onto ``stored``; a secret sent back as the mask keeps its value."""
    merged = dict(stored)
    for key, value in changes.items():
        if key in secret_fields and value == MASK:
            continue
        merged[key] = value
    return merged


def masked(box: SecretBox, connection: Connection) -> dict[str, Any]:
    secrets = box.decrypt(connection.secrets)
    return {**connection.config, **{k: (MASK if v is not None else None) for k, v in secrets.items()}}


def connection_out(box: SecretBox, connection: Connection) -> ConnectionOut:
    return ConnectionOut(
        id=connection.id,
        name=connection.name,
        type=connection.connector_type,
        config=masked(box, connection),
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )
