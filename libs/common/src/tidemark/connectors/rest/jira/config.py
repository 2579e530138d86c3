"""A Jira Cloud connection: the site, an account's e-mail and API token, the projects to read."""

from __future__ import annotations

from pydantic import Field, SecretStr

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
