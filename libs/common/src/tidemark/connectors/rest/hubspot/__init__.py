"""HubSpot source: CRM objects through the v3 objects and search APIs, associations through v4."""

from tidemark.connectors.rest.hubspot.config import HubSpotConfig
from tidemark.connectors.rest.hubspot.source import HubSpotSource

__all__ = ["HubSpotConfig", "HubSpotSource"]
