from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tidemark.connectors.client import DISCOVER_TIMEOUT
from tidemark.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Settings of orchestrator-svc; env prefix ``TIDEMARK_ORCHESTRATOR__``."""

    service_name: ClassVar[str] = "orchestrator"
    model_config = SettingsConfigDict(env_prefix="TIDEMARK_ORCHESTRATOR__", env_nested_delimiter="__", extra="ignore")

    connector_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of connector-svc; pipelines are validated against the catalog its internal "
                    "route discovers (with the platform's internal token).",
    )
    discover_timeout_seconds: float = Field(
        default=DISCOVER_TIMEOUT, gt=0, le=3600,
        description="How long to wait for connector-svc to discover a connection's catalog when a pipeline "
                    "is created or changed; longer than connector-svc's own limit, so its answer arrives.",
    )
    scheduler_enabled: bool = Field(
        default=True,
        description="Run the scheduler loop in this process. Any number of replicas may run it: each tick "
                    "fires once whichever replica sees it first.",
    )
    scheduler_poll_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        description="How often the scheduler looks for due ticks and tops up upcoming runs; a tick fires at "
                    "most this late (sooner when a run ends, which wakes it).",
    )
    schedule_horizon_seconds: float = Field(
        default=86400.0, gt=0, le=31 * 86400,
        description="How far ahead schedule ticks are stored as upcoming (`scheduled`) runs.",
    )
    max_scheduled_per_pipeline: int = Field(
        default=100, ge=1, le=1000,
        description="At most this many upcoming runs are stored per pipeline (a frequent schedule shows "
                    "fewer than the horizon holds); also the bound of `catchup: all`.",
    )
    misfire_grace_seconds: float = Field(
        default=60.0, ge=0, le=86400,
        description="With `catchup: none`, a tick that could not fire within this long after its time "
                    "(the orchestrator was down, or a run was still active) is skipped.",
    )
    maintenance_interval_hours: float = Field(
        default=24.0, gt=0, le=24 * 365,
        description="A pipeline whose tables were last maintained (compact, expire, clean) this long ago gets "
                    "a maintenance run after its next successful run; a new pipeline counts from its creation.",
    )
    maintenance_data_files_threshold: int = Field(
        default=200, ge=1, le=10_000_000,
        description="A run that leaves a table with more data files than this is followed by a compaction run.",
    )
    maintenance_delete_files_threshold: int = Field(
        default=50, ge=1, le=10_000_000,
        description="A run that leaves a table with more position-delete files than this is followed by a "
                    "compaction run.",
    )
    max_active_runs: int = Field(
        default=16, ge=1, le=100_000,
        description="At most this many runs are admitted (sent to the workers and not yet ended) at once, "
                    "over every pipeline; more wait `queued`, first come first served, saying why.",
    )
    max_active_runs_per_connection: int = Field(
        default=4, ge=1, le=10_000,
        description="At most this many admitted runs read one connection at once, so one source database "
                    "is not hammered; `connection_run_limits` sets it per connection.",
    )
    connection_run_limits: dict[uuid.UUID, int] = Field(
        default_factory=dict,
        description="Per-connection limits by connection id, instead of `max_active_runs_per_connection` "
                    '(env: a JSON object, e.g. `{"0a1b…": 1}`).',
    )

    def connection_limit(self, connection_id: uuid.UUID | None) -> int:
        if connection_id is None:
            return self.max_active_runs_per_connection
        return self.connection_run_limits.get(connection_id, self.max_active_runs_per_connection)
