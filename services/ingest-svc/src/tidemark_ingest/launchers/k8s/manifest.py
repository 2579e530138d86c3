"""A run's batch/v1 Job, as the JSON the API takes: a pure function of the worker spec and settings.

Secrets appear only as ``secretKeyRef``s: the spec holds references, never values, and so does the Job.
"""

from __future__ import annotations

import uuid
from typing import Any

from tidemark.errors import ConfigError
from tidemark.events.contracts import Toleration, WorkerOptions, WorkerResources
from tidemark_ingest.launchers.spec import SecretRef, WorkerSpec
from tidemark_ingest.settings import KubernetesSettings

JOB_PREFIX = "tidemark-run-"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN_ID = "tidemark.io/run-id"
LABEL_PIPELINE_ID = "tidemark.io/pipeline-id"
COMMON_LABELS = {LABEL_NAME: "tidemark", LABEL_COMPONENT: "ingest-worker", LABEL_MANAGED_BY: "tidemark-ingest"}
SELECTOR = ",".join(f"{k}={v}" for k, v in COMMON_LABELS.items())
"""The label selector of every Job (and pod) this launcher manages."""
CONTAINER = "worker"
WORK_DIR = "/var/lib/tidemark"


def job_name(run_id: uuid.UUID) -> str:
    """Deterministic, so a retried create finds the same Job: 45 characters, valid DNS-1123."""
    return f"{JOB_PREFIX}{run_id.hex}"


def secret_source(ref: SecretRef, settings: KubernetesSettings) -> dict[str, str]:
    """Where a worker's secret lives: the explicit ``secret_refs`` entry, else the key named like the
    variable in ``worker_secret``."""
    if ref.name in settings.secret_refs:
        name, key = settings.secret_refs[ref.name].split(":", 1)
        return {"name": name, "key": key}
    if settings.worker_secret:
        return {"name": settings.worker_secret, "key": ref.name}
    raise ConfigError(f"no Secret for the worker's {ref.name}: set kubernetes.worker_secret, "
                      f"or kubernetes.secret_refs.{ref.name} to `secret-name:key`")


def _resources(resources: WorkerResources) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for part in ("requests", "limits"):
        amounts = getattr(resources, part)
        values = {k: v for k, v in (amounts.model_dump() if amounts else {}).items() if v is not None}
        if values:
            out[part] = values
    return out


def _toleration(toleration: Toleration) -> dict[str, Any]:
    raw = {"key": toleration.key, "operator": toleration.operator, "value": toleration.value,
           "effect": toleration.effect, "tolerationSeconds": toleration.toleration_seconds}
    return {k: v for k, v in raw.items() if v is not None}


def active_deadline(spec: WorkerSpec, settings: KubernetesSettings) -> int | None:
    """The pipeline's timeout plus a margin: the service stops the run at its timeout; Kubernetes
    ends the Job if the service could not."""
    if spec.timeout_seconds is None:
        return None
    return spec.timeout_seconds + settings.deadline_margin_seconds


def job_manifest(spec: WorkerSpec, settings: KubernetesSettings, namespace: str,
                 stop_grace_seconds: float) -> dict[str, Any]:
    """The Job that runs ``spec``'s worker once (``backoffLimit: 0``: retries are the orchestrator's)."""
    worker = spec.worker or WorkerOptions()
    labels = {**COMMON_LABELS, LABEL_RUN_ID: str(spec.run_id)}
    if spec.pipeline_id is not None:
        labels[LABEL_PIPELINE_ID] = str(spec.pipeline_id)
    # The service's home is a path on its own disk; a worker gets a scratch directory of its own.
    plain = sorted({**spec.env, "TIDEMARK_HOME": WORK_DIR}.items())
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain]
    env += [{"name": ref.name, "valueFrom": {"secretKeyRef": secret_source(ref, settings)}} for ref in spec.secrets]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(spec.command),
        "args": list(spec.args),
        "env": env,
        "resources": _resources(worker.resources or settings.resources),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "work", "mountPath": WORK_DIR}, {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # The pod's SIGTERM-to-SIGKILL window is the service's own grace for a stopped worker.
        "terminationGracePeriodSeconds": max(1, round(stop_grace_seconds)),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    service_account = worker.service_account or settings.service_account
    if service_account:
        pod["serviceAccountName"] = service_account
    node_selector = worker.node_selector if worker.node_selector is not None else settings.node_selector
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    tolerations = worker.tolerations if worker.tolerations is not None else settings.tolerations
    if tolerations:
        pod["tolerations"] = [_toleration(t) for t in tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    deadline = active_deadline(spec, settings)
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(spec.run_id), "namespace": namespace, "labels": labels},
        "spec": job_spec,
    }
