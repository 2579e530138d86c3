"""A HubSpot connection: a private-app token, the objects to read, the associations between them."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from tidemark.connectors.rest.source import RestConfig

_PAIR = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class HubSpotConfig(RestConfig):
    access_token: SecretStr = Field(
        description="Access token of a HubSpot private app (Settings → Integrations → Private Apps) with the "
                    "`crm.objects.<object>.read` and `crm.schemas.<object>.read` scopes of the objects read.")
    objects: list[str] = Field(
        default=["contacts", "companies", "deals", "tickets"], min_length=1,
        description="CRM object types to read, one stream each; custom objects by fully qualified name "
                    "(`p_cars`) or object type id (`2-1234567`).")
    associations: list[str] = Field(
        default_factory=list,
        description="Associations to read as `from.to` pairs (`contacts.companies`); each is the stream "
                    "`<from>_to_<to>`.")
    base_url: str = Field(default="https://api.hubapi.com", description="API root; change only for a proxy.")
    requests_per_second: float = Field(
        default=4.0, gt=0, le=1000,
        description="Most requests per second this connection sends; HubSpot's search API allows 5 per account.")

    @field_validator("associations")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            if not _PAIR.match(pair):
                raise ValueError(f"{pair!r} is not `from.to`, e.g. `contacts.companies`")
        return value
