"""A Salesforce connection: an OAuth 2 connected app, the objects to read, how to read them."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from tidemark.connectors.rest.source import RestConfig


class SalesforceConfig(RestConfig):
    url_field: ClassVar[str] = "login_url"
    login_url: str = Field(
        default="https://login.salesforce.com",
        description="Where tokens come from: `https://login.salesforce.com`, `https://test.salesforce.com` for a "
                    "sandbox, or the org's My Domain URL (required for client credentials).")
    client_id: str = Field(min_length=1, description="Consumer key of the connected app.")
    client_secret: SecretStr = Field(description="Consumer secret of the connected app.")
    refresh_token: SecretStr | None = Field(
        default=None, description="Refresh token of the authorizing user; without it the client credentials flow "
                                  "is used (the connected app's run-as user).")
    api_version: str = Field(default="v61.0", pattern=r"^v\d+\.\d$", description="REST API version, e.g. `v61.0`.")
    objects: list[str] = Field(default=["Account", "Contact", "Opportunity", "Lead", "Case", "User"], min_length=1,
                               description="sObjects to read, one stream each (API names, e.g. `Invoice__c`).")
    @field_validator("objects")
    @classmethod
    def _api_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an sObject API name (letters, digits and underscores)")
        return value

    include_deleted: bool = Field(
        default=False, description="Read deleted records too (queryAll), with their `IsDeleted` column true.")
    bulk_threshold: int = Field(
        default=200_000, ge=0,
        description="Objects with more records than this are read through Bulk API 2.0; 0 reads every object so.")
    bulk_poll_seconds: float = Field(default=5.0, gt=0, le=300,
                                     description="Seconds between checks of a Bulk API job's state.")
    bulk_page_records: int = Field(default=50_000, ge=1, le=1_000_000,
                                   description="Records per page of a Bulk API job's results.")
