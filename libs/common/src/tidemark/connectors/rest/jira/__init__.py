"""Jira Cloud source: issues through JQL search, projects, users and worklogs."""

from tidemark.connectors.rest.jira.config import JiraConfig
from tidemark.connectors.rest.jira.source import JiraSource

__all__ = ["JiraConfig", "JiraSource"]
