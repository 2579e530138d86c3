"""The Kubernetes launcher's Job manifest: valid against the Kubernetes schema (strict), shaped as the
docs say, and never carrying a secret value."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import SecretStr, ValidationError

from tidemark.errors import ConfigError
from tidemark.events import DestinationSpec, PipelineSpec, RunRequested, StreamSpec
from tidemark.events.contracts import WorkerOptions
from tidemark.ids import new_id
from tidemark.lakehouse import LakehouseSettings
from tidemark.settings import DatabaseSettings, PlatformSettings
from tidemark_ingest import settings as settings_module
from tidemark_ingest.launchers import worker_spec
from tidemark_ingest.launchers.k8s.manifest import job_manifest, job_name, secret_source
from tidemark_ingest.launchers.spec import SecretRef
from tidemark_ingest.settings import IngestSettings, KubernetesSettings, WorkerSettings

pytestmark = pytest.mark.unit

K8S_VERSION = "1.33.0"
DB_PASSWORD = "db-pass-1f4e9c"
TOKEN = "internal-token-77ad0b"
S3_SECRET = "s3-secret-5c2e81"


def settings(**kubernetes: Any) -> IngestSettings:
    return IngestSettings(
        platform=PlatformSettings(internal_token=SecretStr(TOKEN)),
        database=DatabaseSettings(url=f"postgresql+asyncpg://ingest:{DB_PASSWORD}@db:5432/ingest"),
        lakehouse=LakehouseSettings(catalog_uri="postgresql+psycopg://cat:catpw@db/catalog",
                                    warehouse="s3://lake/warehouse",
                                    s3={"access_key_id": "AKIA", "secret_access_key": SecretStr(S3_SECRET)}),
        launcher="kubernetes",
        worker_image="registry.example.com/tidemark:1.2.3",
        kubernetes={"worker_secret": "tidemark-worker", **kubernetes},
    )


def requested(worker: dict[str, Any] | None = None, timeout: int | None = None) -> RunRequested:
    return RunRequested(
        run_id=new_id(),
        pipeline=PipelineSpec(pipeline_id=new_id(), name="p", connection_id=new_id(),
                              streams=[StreamSpec(name="public.orders")], destination=DestinationSpec(),
                              worker=WorkerOptions.model_validate(worker) if worker is not None else None),
        trigger="manual",
        timeout_seconds=timeout,
    )


def manifest(s: IngestSettings, event: RunRequested, grace: float = 10) -> dict[str, Any]:
    return job_manifest(worker_spec(s, event.run_id, event), s.kubernetes, "tidemark", grace)


VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any] | None, int | None]] = {
    "defaults": ({}, None, None),
    "pipeline worker block and timeout": ({}, {
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
        "node_selector": {"pool": "ingest"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ingest", "effect": "NoSchedule"},
                        {"operator": "Exists", "effect": "NoExecute", "toleration_seconds": 60}],
        "service_account": "tidemark-worker-bq",
    }, 1800),
    "launcher defaults and explicit secret refs": ({
        "service_account": "tidemark-worker", "image_pull_policy": "Always", "ttl_seconds_after_finished": 600,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "node_selector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "spot", "operator": "Exists"}],
        "secret_refs": {"TIDEMARK_INGEST__DATABASE__URL": "ingest-db:url",
                        "TIDEMARK_INTERNAL_TOKEN": "tokens:internal"},
    }, None, 60),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_job_manifest_is_valid_kubernetes_strictly(variant: str) -> None:
    kubernetes, worker, timeout = VARIANTS[variant]
    job = manifest(settings(**kubernetes), requested(worker, timeout))
    # Raises on any field the schema does not know (strict) or any value of the wrong type.
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_secret_value_appears_in_a_manifest(variant: str) -> None:
    kubernetes, worker, timeout = VARIANTS[variant]
    text = json.dumps(manifest(settings(**kubernetes), requested(worker, timeout)))
    for secret in (DB_PASSWORD, TOKEN, S3_SECRET, "catpw"):
        assert secret not in text


def test_the_job_is_named_and_labelled_from_the_run() -> None:
    event = requested()
    job = manifest(settings(), event)
    name = job["metadata"]["name"]
    assert name == job_name(event.run_id) == f"tidemark-run-{event.run_id.hex}"
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    labels = {
        "app.kubernetes.io/name": "tidemark", "app.kubernetes.io/component": "ingest-worker",
        "app.kubernetes.io/managed-by": "tidemark-ingest", "tidemark.io/run-id": str(event.run_id),
        "tidemark.io/pipeline-id": str(event.pipeline.pipeline_id),
    }
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels  # so its pods are found by run too
    assert job["metadata"]["namespace"] == "tidemark"


def test_the_job_runs_once_as_non_root_and_is_cleaned_up() -> None:
    job = manifest(settings(), requested(), grace=25)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert "activeDeadlineSeconds" not in spec  # no timeout on the pipeline, no deadline
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 25
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "registry.example.com/tidemark:1.2.3"
    assert container["command"] == ["tidemark-worker"]
    assert container["args"][0] == "run"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
    assert "serviceAccountName" not in pod
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod


def test_the_deadline_is_the_pipelines_timeout_plus_the_margin() -> None:
    job = manifest(settings(deadline_margin_seconds=120), requested(timeout=900))
    assert job["spec"]["activeDeadlineSeconds"] == 1020


def test_the_pipelines_worker_block_wins_over_the_launchers_defaults() -> None:
    _, worker, timeout = VARIANTS["pipeline worker block and timeout"]
    kubernetes = VARIANTS["launcher defaults and explicit secret refs"][0]
    pod = manifest(settings(**kubernetes), requested(worker, timeout))["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "4", "memory": "8Gi"}}
    assert pod["nodeSelector"] == {"pool": "ingest"}
    assert pod["serviceAccountName"] == "tidemark-worker-bq"
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ingest", "effect": "NoSchedule"},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    # And without a worker block, the launcher's defaults.
    pod = manifest(settings(**kubernetes), requested())["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tidemark-worker"
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    assert pod["containers"][0]["imagePullPolicy"] == "Always"


def test_secrets_become_secret_key_refs() -> None:
    kubernetes = VARIANTS["launcher defaults and explicit secret refs"][0]
    env = {e["name"]: e for e in manifest(settings(**kubernetes), requested())["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["TIDEMARK_INGEST__DATABASE__URL"] == {
        "name": "TIDEMARK_INGEST__DATABASE__URL", "valueFrom": {"secretKeyRef": {"name": "ingest-db", "key": "url"}}}
    assert env["TIDEMARK_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "tokens", "key": "internal"}
    # Not mapped explicitly: the worker Secret, keyed by the variable's name.
    key = "TIDEMARK_INGEST__LAKEHOUSE__S3__SECRET_ACCESS_KEY"
    assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "tidemark-worker", "key": key}
    # A secret setting the service leaves empty is not referenced: its pod needs no key for it.
    assert "TIDEMARK_INGEST__LAKEHOUSE__PROPERTIES" not in env
    # Plain settings are values; the worker's home is its own scratch directory.
    assert env["TIDEMARK_INGEST__LAUNCHER"]["value"] == "kubernetes"
    assert env["TIDEMARK_HOME"]["value"] == "/var/lib/tidemark"


def test_a_secret_with_no_mapping_is_a_config_error_naming_the_settings() -> None:
    with pytest.raises(ConfigError, match=r"kubernetes.worker_secret.*secret_refs.TIDEMARK_INTERNAL_TOKEN"):
        secret_source(SecretRef(name="TIDEMARK_INTERNAL_TOKEN", setting="platform.internal_token"),
                      KubernetesSettings())


@pytest.mark.parametrize(("field", "value", "message"), [
    ("resources", {"requests": {"cpu": "lots"}}, "resources.requests.cpu: 'lots' is not a Kubernetes quantity"),
    ("resources", {"limits": {"memory": "-1Gi"}}, "resources.limits.memory"),
    ("secret_refs", {"TIDEMARK_INTERNAL_TOKEN": "no-key"}, "is not `secret-name:key`"),
    ("image_pull_policy", "Sometimes", "image_pull_policy"),
])
def test_bad_launcher_settings_are_refused_at_start(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        KubernetesSettings.model_validate({field: value})


def test_settings_come_from_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_INGEST__LAUNCHER", "kubernetes")
    monkeypatch.setenv("TIDEMARK_INGEST__KUBERNETES__NAMESPACE", "data")
    monkeypatch.setenv("TIDEMARK_INGEST__KUBERNETES__WORKER_SECRET", "tidemark-worker")
    monkeypatch.setenv("TIDEMARK_INGEST__KUBERNETES__SECRET_REFS", '{"TIDEMARK_INTERNAL_TOKEN": "tokens:internal"}')
    monkeypatch.setenv("TIDEMARK_INGEST__KUBERNETES__STUCK_DEADLINE_SECONDS", "120")
    monkeypatch.setenv("TIDEMARK_INGEST__KUBERNETES__NODE_SELECTOR", '{"pool": "ingest"}')
    s = IngestSettings()
    assert s.launcher == "kubernetes"
    assert s.kubernetes.job_namespace() == "data"
    assert s.kubernetes.worker_secret == "tidemark-worker"
    assert s.kubernetes.secret_refs == {"TIDEMARK_INTERNAL_TOKEN": "tokens:internal"}
    assert s.kubernetes.stuck_deadline_seconds == 120
    assert s.kubernetes.node_selector == {"pool": "ingest"}


def test_the_namespace_defaults_to_the_pods_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace_file = tmp_path / "namespace"
    monkeypatch.setattr(settings_module, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    assert KubernetesSettings().job_namespace() == "default"  # not in a pod
    namespace_file.write_text("tidemark-prod\n")
    assert KubernetesSettings().job_namespace() == "tidemark-prod"


def test_job_names_differ_per_run() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert job_name(a) != job_name(b)
    assert job_name(a) == job_name(uuid.UUID(str(a)))


def test_the_strict_schema_check_does_catch_a_wrong_field() -> None:
    # The validation above means something: a misspelled field in the same manifest is refused.
    job = manifest(settings(), requested())
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_a_worker_in_production_needs_no_api_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Kubernetes worker gets exactly its Job's environment: no API tokens, which it does not serve.
    monkeypatch.setenv("TIDEMARK_ENVIRONMENT", "production")
    monkeypatch.setenv("TIDEMARK_INGEST__DATABASE__URL", "postgresql+asyncpg://u:p@db/ingest")
    monkeypatch.setenv("TIDEMARK_INGEST__LAKEHOUSE__CATALOG_URI", "postgresql+psycopg://u:p@db/catalog")
    monkeypatch.setenv("TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE", "s3://lake/warehouse")
    assert WorkerSettings().platform.environment == "production"
    with pytest.raises(ValidationError, match="auth: production needs at least one API token"):
        IngestSettings()
