"""A Jira Cloud connection: the site, an account's e-mail and API token, the projects to read."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from tidemark.connectors.rest.source import RestConfig


class JiraConfig(RestConfig):
    base_url: str = Field(description="The Jira Cloud site, e.g. `https://your-domain.atlassian.net`.")
    email: str = Field(min_length=3, description="E-mail of the Atlassian account the API token belongs to.")
    api_token: SecretStr = Field(
        description="API token of that account (https://id.atlassian.com/manage-profile/security/api-tokens).")
    projects: list[str] = Field(
        default_factory=list, description="Project keys whose issues are read; all the account can browse when empty.")
    requests_per_second: float = Field(default=5.0, gt=0, le=1000,
                                       description="Most requests per second this connection sends.")

    @field_validator("projects")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        # Keys go into JQL as they are: only what Jira allows in a key.
        for key in value:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,254}", key):
                raise ValueError(f"{key!r} is not a Jira project key (capital letters, digits, underscores)")
        return value
