"""connector-svc's API models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tidemark.api.bodies import Omittable, drop_null_defaults
from tidemark.connectors.boundary import MASK as BOUNDARY_MASK
from tidemark.errors import FailureKind

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MASK = BOUNDARY_MASK  # stored secrets are shown with the mask that replaces them in errors


class ConnectorTypeOut(BaseModel):
    type: str
    title: str
    config_schema: dict[str, Any] = Field(description="JSON Schema of the connector's `config`.")
    secret_fields: list[str] = Field(description="Fields stored encrypted and never returned.")


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique name: letters, digits, `_ . -`.")
    type: str = Field(min_length=1, max_length=64, description="Connector type, see /v1/connector-types.")
    config: dict[str, Any] = Field(description="The connector's settings, secrets included.")


class ConnectionUpdate(BaseModel):
    """A change: fields left out keep their value; none may be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_null_defaults)

    name: Omittable[str] = Field(default=None, pattern=NAME_PATTERN, description="A new unique name.")
    config: Omittable[dict[str, Any]] = Field(
        default=None,
        description=(
            f"Fields to change, merged onto the stored config. A secret left out, or sent as `{MASK}`, "
            "keeps its stored value."
        ),
    )


class ConnectionOut(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    config: dict[str, Any] = Field(description=f"The config with every secret shown as `{MASK}`.")
    created_at: datetime
    updated_at: datetime


class CheckResult(BaseModel):
    status: Literal["succeeded", "failed"]
    message: str | None = Field(default=None, description="Why the check failed; safe to show.")
    kind: FailureKind | None = Field(
        default=None,
        description="`config`: fix the settings; `transient`: try again; `terminal`: neither helps.",
    )


class ConnectionConfigOut(BaseModel):
    """The revealed config: internal route only, for workers."""

    id: uuid.UUID
    type: str
    config: dict[str, Any]
