"""What a worker needs to run one run, as data a launcher turns into a process or a Kubernetes Job.

A :class:`WorkerSpec` holds the entry point and arguments, the image, the plain settings as
environment values, and a :class:`SecretRef` for every secret: the variable the worker reads it from
and where the service holds it. It never holds a secret value, so it can be logged, stored or
rendered into a Job manifest; each launcher fills the secrets in its own way (the local launcher from
the service's settings when it starts the process; a Kubernetes launcher from a Secret).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tidemark.events.contracts import RunRequested, WorkerOptions
from tidemark.lakehouse.settings import env_text, setting_at
from tidemark_ingest.settings import ENV_PREFIX, IngestSettings

ENTRY_POINT = ("tidemark-worker",)
"""The worker's console script (``tidemark-worker run RUN_ID``), installed with ingest-svc."""

INTERNAL_TOKEN = "TIDEMARK_INTERNAL_TOKEN"  # noqa: S105 - the variable's name, not a token


class SecretRef(BaseModel):
    """A secret the worker needs: the environment variable it reads, and where its value comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="The environment variable the worker reads, e.g. `TIDEMARK_INTERNAL_TOKEN`.")
    setting: str = Field(
        description="Where the service holds the value: a dotted path into its settings, "
                    "e.g. `platform.internal_token`. A Kubernetes launcher maps `name` to a Secret key instead."
    )


class WorkerSpec(BaseModel):
    """One run's worker: what to start and with which settings, secrets by reference only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: uuid.UUID
    command: tuple[str, ...] = Field(default=ENTRY_POINT, description="The entry point in the image.")
    args: tuple[str, ...] = Field(description="Its arguments: `run <run id>`.")
    image: str = Field(description="The container image (the Kubernetes launcher; the local one runs its own code).")
    env: dict[str, str] = Field(description="Plain settings as environment variables (no secrets).")
    secrets: tuple[SecretRef, ...] = Field(description="Secrets the worker reads from its environment.")
    pipeline_id: uuid.UUID | None = Field(default=None, description="The run's pipeline (a Job's label).")
    timeout_seconds: int | None = Field(default=None, description="The pipeline's run timeout, when it has one.")
    worker: WorkerOptions | None = Field(
        default=None, description="The pipeline's resources, node selector, tolerations and service account.")


def worker_spec(settings: IngestSettings, run_id: uuid.UUID, requested: RunRequested | None = None) -> WorkerSpec:
    """The worker for ``run_id``, with exactly the settings this service runs with (also when they
    came from code rather than the environment), and what ``requested`` (the run's ``run.requested``)
    says about where and how long it runs."""
    env = {
        "TIDEMARK_HOME": str(settings.platform.home.expanduser().resolve()),
        "TIDEMARK_ENVIRONMENT": settings.platform.environment,
        f"{ENV_PREFIX}CONNECTOR_URL": settings.connector_url,
        f"{ENV_PREFIX}LAUNCHER": settings.launcher,
        f"{ENV_PREFIX}HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        f"{ENV_PREFIX}HEARTBEAT_TIMEOUT_SECONDS": str(settings.heartbeat_timeout_seconds),
        f"{ENV_PREFIX}STREAM_CONCURRENCY": str(settings.stream_concurrency),
        f"{ENV_PREFIX}LOG_LEVEL": settings.log_level,
        f"{ENV_PREFIX}LOG_FORMAT": settings.log_format,
        f"{ENV_PREFIX}BUS": settings.bus,
    }
    if settings.platform.egress_allow:
        # The worker's sources check their endpoints against the same allow-list as the API's.
        env["TIDEMARK_EGRESS_ALLOW"] = settings.platform.egress_allow
    # The database URL may carry a password: always a reference.
    secrets = [SecretRef(name=f"{ENV_PREFIX}DATABASE__URL", setting="database.url")]
    if settings.platform.internal_token is not None:
        secrets.append(SecretRef(name=INTERNAL_TOKEN, setting="platform.internal_token"))
    for var in settings.lakehouse.variables(f"{ENV_PREFIX}LAKEHOUSE__"):
        if var.secret and setting_at(settings.lakehouse, var.path) in ("", {}):
            # Nothing to pass (no passthrough properties): the worker's default is the same, and a
            # Kubernetes worker is not made to need a Secret key for it.
            continue
        if var.secret:
            secrets.append(SecretRef(name=var.name, setting=f"lakehouse.{var.path}"))
        else:
            env[var.name] = env_text(setting_at(settings.lakehouse, var.path))
    pipeline = requested.pipeline if requested is not None else None
    return WorkerSpec(run_id=run_id, args=("run", str(run_id)), image=settings.worker_image, env=env,
                      secrets=tuple(secrets),
                      pipeline_id=pipeline.pipeline_id if pipeline else None,
                      timeout_seconds=requested.timeout_seconds if requested else None,
                      worker=pipeline.worker if pipeline else None)


def resolve_secret(settings: IngestSettings, ref: SecretRef) -> str:
    """The value a reference points to, revealed (only a launcher starting the worker calls this)."""
    value: Any = setting_at(settings, ref.setting)
    return env_text(value)
