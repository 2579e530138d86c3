from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tidemark import __version__
from tidemark.events.contracts import QUANTITY_PATTERN, Toleration, WorkerResources
from tidemark.lakehouse import LakehouseSettings
from tidemark.settings import ServiceSettings

ENV_PREFIX = "TIDEMARK_INGEST__"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_SECRET_REF = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[-._a-zA-Z0-9]+$")


class KubernetesSettings(BaseModel):
    """The Kubernetes launcher (``launcher: kubernetes``): one batch/v1 Job per run;
    env ``TIDEMARK_INGEST__KUBERNETES__<FIELD>``."""

    namespace: str | None = Field(
        default=None,
        description="Namespace the Jobs run in. Absent: the pod's own namespace (from its service-account "
                    "token mount), else `default`.",
    )
    in_cluster: bool = Field(
        default=True,
        description="Use the pod's service account (in a cluster); false: the kubeconfig (`KUBECONFIG` or "
                    "~/.kube/config).",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="With `in_cluster: false`, the kubeconfig file; absent: `KUBECONFIG` or ~/.kube/config.",
    )
    worker_secret: str | None = Field(
        default=None,
        description="The Secret holding the workers' secrets, one key per environment variable name "
                    "(e.g. key `TIDEMARK_INGEST__DATABASE__URL`); used for every secret not in `secret_refs`.",
    )
    secret_refs: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit `secret-name:key` per worker environment variable (JSON in the environment), "
                    "so a worker reads the same Secret key as the service.",
    )
    service_account: str | None = Field(
        default=None, description="Service account of the workers' pods, unless the pipeline names one."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="The worker container's image pull policy."
    )
    ttl_seconds_after_finished: int = Field(
        default=3600, ge=0, description="How long a finished Job (and its pod's log) is kept before deletion."
    )
    deadline_margin_seconds: int = Field(
        default=300, ge=0,
        description="Added to a pipeline's `timeout_seconds` for the Job's `activeDeadlineSeconds`: the service "
                    "stops a run at its timeout itself; the deadline is the backstop if it could not.",
    )
    resources: WorkerResources = Field(
        default_factory=lambda: WorkerResources.model_validate(
            {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}),
        description="Requests and limits of a worker whose pipeline sets none (per field: cpu, memory).",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of a worker whose pipeline sets none."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations of a worker whose pipeline sets none."
    )
    run_as_user: int = Field(
        default=10001, ge=1, description="The non-root user id the worker runs as (the image's `tidemark` user)."
    )
    start_timeout_seconds: float = Field(
        default=600, gt=0,
        description="How long a run's pod may take to start its worker (scheduling, pulling the image) before "
                    "the run fails; the local launcher uses `heartbeat_timeout_seconds`.",
    )
    stuck_deadline_seconds: float = Field(
        default=300, gt=0,
        description="How long a worker's pod may sit in ImagePullBackOff, ErrImagePull, CrashLoopBackOff, "
                    "CreateContainerConfigError (a missing Secret key) or Unschedulable before its run fails "
                    "with that reason.",
    )
    poll_seconds: float = Field(
        default=10, gt=0, description="How often the pods of live Jobs are checked for being stuck."
    )
    watch_seconds: int = Field(
        default=30, ge=1, le=600,
        description="Length of one watch request on Jobs before it is renewed from the last resourceVersion "
                    "(bounds how long stopping the service waits for it).",
    )

    @field_validator("resources")
    @classmethod
    def _quantities(cls, resources: WorkerResources) -> WorkerResources:
        for part in ("requests", "limits"):
            amounts = getattr(resources, part)
            for field in ("cpu", "memory"):
                value = getattr(amounts, field) if amounts else None
                if value is not None and not re.fullmatch(QUANTITY_PATTERN, value):
                    raise ValueError(f"resources.{part}.{field}: {value!r} is not a Kubernetes quantity")
        return resources

    @field_validator("secret_refs")
    @classmethod
    def _refs(cls, refs: dict[str, str]) -> dict[str, str]:
        for name, ref in refs.items():
            if not _SECRET_REF.match(ref):
                raise ValueError(f"secret_refs.{name}: {ref!r} is not `secret-name:key`")
        return refs

    def job_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"


class IngestSettings(ServiceSettings):
    """Settings of ingest-svc and of the workers it launches; env prefix ``TIDEMARK_INGEST__``."""

    service_name: ClassVar[str] = "ingest"
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    lakehouse: LakehouseSettings = Field(
        default_factory=LakehouseSettings, description="Iceberg catalog and warehouse the workers write to."
    )
    connector_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of connector-svc; workers fetch connection configs from its internal route.",
    )
    launcher: Literal["local", "kubernetes"] = Field(
        default="local",
        description="How workers run: `local` starts a subprocess per run; `kubernetes` a batch/v1 Job per run.",
    )
    local_start: Literal["forkserver", "process"] = Field(
        default="forkserver",
        description="How the `local` launcher starts a worker: `forkserver` forks it from a process started "
                    "once that has already imported the worker's modules (a run starts in milliseconds; each run "
                    "is still its own process, stopped and killed alone); `process` starts a new Python "
                    "interpreter per run (seconds of imports each).",
    )
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings, description="The Kubernetes launcher (`launcher: kubernetes`)."
    )
    worker_image: str = Field(
        default=f"tidemark:{__version__}",
        description="The container image a worker runs in (the Kubernetes launcher; `local` runs this install).",
    )
    stop_grace_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="How long a worker being stopped (its run cancelled or timed out) gets after SIGTERM "
                    "before SIGKILL. When the service stops, its workers get this long to finish, then "
                    "SIGTERM, then this long again before SIGKILL.",
    )
    stream_concurrency: int = Field(
        default=4, ge=1, le=64,
        description="How many streams of one run a worker loads at once, each in its own thread with its own "
                    "source connection and its own bounded read-ahead (each still commits its own table once). "
                    "Small tables spend their time waiting on the source and the catalog, so a few more than the "
                    "cores help; the worker's peak memory grows with it on large tables. 1 loads them one after "
                    "another.",
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How often a worker records that it is alive."
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A run whose worker was silent this long is failed."
    )

    def start_timeout_seconds(self) -> float:
        """How long a launched worker may take to report in before its run fails: a process starts at
        once; a pod may wait for a node and its image."""
        if self.launcher == "kubernetes":
            return max(self.heartbeat_timeout_seconds, self.kubernetes.start_timeout_seconds)
        return self.heartbeat_timeout_seconds

    @model_validator(mode="after")
    def _lakehouse_and_liveness(self) -> Self:
        self.lakehouse = self.lakehouse.resolve(self.platform.home)
        if self.heartbeat_timeout_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                "heartbeat_timeout_seconds must exceed twice heartbeat_seconds, "
                "or one late heartbeat fails a healthy run"
            )
        if self.platform.environment == "production" and self.lakehouse.uses_sqlite:
            raise ValueError("lakehouse.catalog_uri: the SQLite catalog is for embedded mode; "
                             "production needs PostgreSQL or a REST catalog")
        return self


class WorkerSettings(IngestSettings):
    """A worker's settings: ingest-svc's, as its launcher passes them, without the API's. A worker
    serves no API, so in production it needs no API token (a Kubernetes worker is given none)."""

    serves_api: ClassVar[bool] = False

    launched_at: float | None = Field(
        default=None,
        description="When the local launcher started this worker (Unix time; it sets it): the worker logs "
                    "how long it took to begin (`worker up`, `startup_seconds`).",
    )
