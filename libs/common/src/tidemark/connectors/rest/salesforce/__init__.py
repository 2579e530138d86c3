"""Salesforce source: sObjects through SOQL (REST query, or Bulk API 2.0 for large objects)."""

from tidemark.connectors.rest.salesforce.config import SalesforceConfig
from tidemark.connectors.rest.salesforce.source import SalesforceSource

__all__ = ["SalesforceConfig", "SalesforceSource"]
