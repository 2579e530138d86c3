"""The Helm chart, tested by rendering it: lint, strict Kubernetes schemas, and what an operator relies on
(probes, RBAC scope, secrets only by reference, hook order, non-root, requests, production-safe settings)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, get_args

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from tests.fixtures.helm import (
    CHART,
    EVERYTHING,
    EXTERNAL,
    NAMESPACE,
    REQUIRED,
    ROOT,
    SENTINELS,
    SERVICES,
    VALUE_SETS,
    containers,
    find,
    fullname,
    one,
    pod_specs,
    rendered,
    run_helm,
    template,
)
from tidemark.ids import new_id
from tidemark_connector.settings import ConnectorSettings
from tidemark_impact.settings import ImpactSettings
from tidemark_ingest.launchers import worker_spec
from tidemark_ingest.settings import IngestSettings
from tidemark_jobs.settings import JobsSettings
from tidemark_orchestrator.settings import OrchestratorSettings
from tidemark_schema.settings import SchemaSettings

pytestmark = pytest.mark.unit

SETTINGS: dict[str, type[BaseSettings]] = {
    "connector": ConnectorSettings, "ingest": IngestSettings, "orchestrator": OrchestratorSettings,
    "jobs": JobsSettings, "schema": SchemaSettings, "impact": ImpactSettings,
}
# Kubernetes versions the chart admits (Chart.yaml kubeVersion >=1.27) and the newest the validator knows.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CRD_GROUPS = ("monitoring.coreos.com/",)
SETS = sorted(VALUE_SETS)
# The Kubernetes launcher's settings arrive with its own branch; until a checkout has them, the launcher
# choice cannot be validated by IngestSettings and is checked literally instead (the rest of the env is).
LAUNCHER_UNKNOWN = () if "kubernetes" in get_args(IngestSettings.model_fields["launcher"].annotation) else (
    "TIDEMARK_INGEST__LAUNCHER",)


def service_container(docs: tuple[dict[str, Any], ...], svc: str) -> dict[str, Any]:
    container: dict[str, Any] = one(docs, "Deployment", fullname(svc))["spec"]["template"]["spec"]["containers"][0]
    return container


# --- lint and schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_helm_lint_strict_passes(name: str) -> None:
    result = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, values=VALUE_SETS[name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", SETS)
def test_every_built_in_object_passes_the_strict_kubernetes_schema(name: str) -> None:
    _, docs = rendered(name)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message} at {exc.path}")
        checked += 1
    assert checked >= 6 * 3  # a Deployment, Service and ServiceAccount per service at least


def test_the_service_monitor_scrapes_every_services_metrics() -> None:
    _, docs = rendered("everything")
    (monitor,) = find(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in find(docs, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(fullname(svc) for svc in SERVICES)
    assert all(any(p["name"] == "http" for p in s["spec"]["ports"]) for s in selected)


def test_the_alerting_rules_ship_unchanged_as_a_prometheus_rule() -> None:
    link = CHART / "prometheus"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "deploy" / "prometheus").resolve()
    rules_file = ROOT / "deploy" / "prometheus" / "rules.yaml"
    _, docs = rendered("everything")
    found = find(docs, "PrometheusRule")
    if not rules_file.exists():  # no rules shipped in this checkout: nothing to wrap
        assert not found
        return
    (rule,) = found
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"]["groups"] == yaml.safe_load(rules_file.read_text())["groups"]
    _, defaults = rendered("defaults")
    assert not find(defaults, "PrometheusRule")


def test_optional_objects_are_off_by_default_and_on_when_asked() -> None:
    _, defaults = rendered("defaults")
    _, everything = rendered("everything")
    for kind in ("Ingress", "HorizontalPodAutoscaler", "ServiceMonitor"):
        assert not find(defaults, kind)
        assert find(everything, kind)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in find(everything, "HorizontalPodAutoscaler")}
    assert sorted(hpas) == sorted(fullname(svc) for svc in SERVICES)
    # An autoscaled Deployment leaves its replica count to the HPA, so an upgrade never resets it.
    assert all("replicas" not in d["spec"] for d in find(everything, "Deployment"))
    assert all(d["spec"]["replicas"] >= 1 for d in find(defaults, "Deployment"))


# --- probes, security, resources ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_every_service_has_its_account_and_service_and_probes_healthz_and_readyz_on_its_port(name: str) -> None:
    _, docs = rendered(name)
    for svc in SERVICES:
        c = service_container(docs, svc)
        assert c["command"][:2] == [f"tidemark-{svc}-svc", "serve"]
        assert c["command"][c["command"].index("--port") + 1] == "8000"
        assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        service = one(docs, "Service", fullname(svc))
        pod = one(docs, "Deployment", fullname(svc))["spec"]["template"]
        # Each service runs as its own ServiceAccount, which the chart renders.
        account = one(docs, "ServiceAccount", pod["spec"]["serviceAccountName"])
        assert account["metadata"]["namespace"] == NAMESPACE
        pod_labels = pod["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        # The selector picks this service's pods only.
        others = [d for d in find(docs, "Deployment") if d["metadata"]["name"] != fullname(svc)]
        assert not any(service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
                       for d in others)


@pytest.mark.parametrize("name", SETS)
def test_every_pod_runs_non_root_with_a_locked_down_container(name: str) -> None:
    _, docs = rendered(name)
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_user is not None
    for where, spec in pod_specs(docs):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] == int(dockerfile_user.group(1)) != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
    for where, c in containers(docs):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        # A read-only root still needs a writable /tmp and home.
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/home/tidemark/.tidemark"} <= mounts, where  # noqa: S108 - a mount point


@pytest.mark.parametrize("name", SETS)
def test_no_container_sets_a_variable_twice(name: str) -> None:
    # Kubernetes accepts duplicate names and silently keeps one: a user's setting must never shadow the chart's.
    _, docs = rendered(name)
    for where, c in containers(docs):
        names = [e["name"] for e in c["env"]]
        assert len(names) == len(set(names)), where


@pytest.mark.parametrize("name", SETS)
def test_every_container_requests_cpu_and_memory(name: str) -> None:
    _, docs = rendered(name)
    for where, c in containers(docs):
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
        assert "memory" in c["resources"]["limits"], where


# --- RBAC -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_only_ingest_may_manage_jobs_and_read_pods_in_its_own_namespace(name: str) -> None:
    _, docs = rendered(name)
    assert not find(docs, "ClusterRole")
    assert not find(docs, "ClusterRoleBinding")
    kubernetes = VALUE_SETS[name].get("launcher", {}).get("type", "kubernetes") == "kubernetes"
    roles, bindings = find(docs, "Role"), find(docs, "RoleBinding")
    tokens = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["automountServiceAccountToken"]
              for d in find(docs, "Deployment")}
    if not kubernetes:
        assert not roles
        assert not bindings
        assert not any(tokens.values())
        return
    (role,) = roles
    (binding,) = bindings
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in role["rules"]
    )
    assert rules == [
        (("",), ("pods",), ("get", "list")),
        (("batch",), ("jobs",), ("create", "delete", "get", "list", "watch")),
    ]
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    ingest_sa = one(docs, "Deployment", fullname("ingest"))["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ingest_sa, "namespace": NAMESPACE}]
    # Only ingest-svc's pods carry an API token.
    assert tokens == {fullname(svc): svc == "ingest" for svc in SERVICES}
    accounts = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in find(docs, "Deployment")}
    assert len(accounts) == len(SERVICES)


def test_the_workers_get_their_own_service_account_without_api_access() -> None:
    _, docs = rendered("everything")
    env = env_of(service_container(docs, "ingest"))
    worker_sa = env["TIDEMARK_INGEST__KUBERNETES__SERVICE_ACCOUNT"]
    account = one(docs, "ServiceAccount", worker_sa)
    assert account["automountServiceAccountToken"] is False
    assert all(s["name"] != worker_sa for b in find(docs, "RoleBinding") for s in b["subjects"])
    # With create: false the chart points at the user's account and creates none.
    _, external = rendered("external")
    assert env_of(service_container(external, "ingest"))["TIDEMARK_INGEST__KUBERNETES__SERVICE_ACCOUNT"] == (
        "existing-workers")
    assert not find(external, "ServiceAccount", "existing-workers")


# --- the migration hook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "everything", "external"])
def test_the_migration_hook_runs_every_services_migrate_after_its_service_account(name: str) -> None:
    _, docs = rendered(name)
    hooks = [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    assert sorted(d["kind"] for d in hooks) == ["Job", "ServiceAccount"]
    for hook in hooks:
        notes = hook["metadata"]["annotations"]
        assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
    (job,) = find(docs, "Job")
    (account,) = [h for h in hooks if h["kind"] == "ServiceAccount"]

    def weight(obj: dict[str, Any]) -> int:
        return int(obj["metadata"]["annotations"]["helm.sh/hook-weight"])

    # Helm creates hooks in weight order and waits for each: the Job's account must exist first.
    assert weight(account) < weight(job)
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert spec["restartPolicy"] == "Never"
    commands = sorted(c["command"] for c in spec["containers"])
    assert commands == sorted([f"tidemark-{svc}-svc", "migrate"] for svc in SERVICES)
    # Each migrating container reads its service's database the same way the service does.
    for c in spec["containers"]:
        svc = c["command"][0].removeprefix("tidemark-").removesuffix("-svc")
        assert c["env"] == service_container(docs, svc)["env"]
    # No Secret is rendered: the hook (pre-install) can only read Secrets that exist before the release.
    assert not find(docs, "Secret")


def test_migrations_can_be_turned_off() -> None:
    _, docs = rendered("local-launcher")
    assert not find(docs, "Job")


# --- secrets ------------------------------------------------------------------------------------------


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → plain value, or ("secret", name, key) for a secretKeyRef."""
    out: dict[str, Any] = {}
    for e in container["env"]:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            out[e["name"]] = ("secret", ref["name"], ref["key"])
        else:
            out[e["name"]] = e["value"]
    return out


def secret_fields(model: type[BaseModel], prefix: str) -> set[str]:
    """Env names of every field of a settings model that holds a secret (or may carry one, like URLs)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name.upper()}"
        annotation = str(field.annotation)
        sub = field.annotation if isinstance(field.annotation, type) else None
        if sub is not None and issubclass(sub, BaseModel):
            found |= secret_fields(sub, f"{key}__")
        elif "SecretStr" in annotation or name in ("url", "catalog_uri", "properties"):
            found.add(key)
    return found


def secret_env_names(svc: str) -> set[str]:
    cls = SETTINGS[svc]
    prefix = str(cls.model_config.get("env_prefix"))
    names = {n for n in secret_fields(cls, prefix) if "__PLATFORM__" not in n}
    return names | {"TIDEMARK_API_TOKEN", "TIDEMARK_INTERNAL_TOKEN"}


@pytest.mark.parametrize("name", SETS)
def test_every_secret_setting_comes_from_a_secret_never_a_value(name: str) -> None:
    _, docs = rendered(name)
    for svc in SERVICES:
        secret_names = secret_env_names(svc)
        assert f"TIDEMARK_{svc.upper()}__DATABASE__URL" in secret_names
        for where, c in containers(docs):
            if c["command"][0] != f"tidemark-{svc}-svc":
                continue
            for e in c["env"]:
                if e["name"] in secret_names:
                    assert "value" not in e, f"{where}: {e['name']} is a plain value"
                    assert set(e["valueFrom"]) == {"secretKeyRef"}, where
    # The API tokens are a mounted Secret file, not an environment value.
    for _, c in containers(docs):
        assert not any(e["name"].endswith("__AUTH__TOKENS") for e in c["env"])


BAD_SECRET_PLACES: list[tuple[dict[str, Any], str]] = [
    ({"kafka": {**REQUIRED["kafka"], "sasl": {"password": SENTINELS[3]}}}, "Additional property password"),
    ({"database": {"url": f"postgresql+asyncpg://u:{SENTINELS[0]}@db/x"}}, "Additional property url"),
    ({"auth": {"tokens": [SENTINELS[1]]}}, "Additional property tokens"),
    ({"lakehouse": {**REQUIRED["lakehouse"], "s3": {"secretAccessKey": SENTINELS[2]}}},
     "Additional property secretAccessKey"),
    ({"services": {"ingest": {"settings": {"LAKEHOUSE__S3__SECRET_ACCESS_KEY": SENTINELS[2]}}}},
     "services.ingest.settings"),
    ({"services": {"jobs": {"extraEnv": [{"name": "TIDEMARK_JOBS__DATABASE__URL", "value": SENTINELS[0]}]}}},
     "services.jobs.extraEnv.0"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_SECRET_PLACES)
def test_a_secret_given_as_a_plain_value_is_refused_and_never_echoed(bad: dict[str, Any], message: str) -> None:
    values = merge(EVERYTHING, bad)
    result = template(values)
    assert result.returncode != 0
    assert message in result.stderr
    for sentinel in SENTINELS:
        assert sentinel not in result.stdout + result.stderr


@pytest.mark.parametrize("name", SETS)
def test_no_rendered_object_holds_secret_data(name: str) -> None:
    text, docs = rendered(name)
    assert not find(docs, "Secret")
    for sentinel in SENTINELS:
        assert sentinel not in text
    # Every secretKeyRef names a Secret key the values name (nothing invented by the chart).
    for _, c in containers(docs):
        for e in c["env"]:
            if "valueFrom" in e:
                ref = e["valueFrom"]["secretKeyRef"]
                assert ref["name"] in json.dumps(VALUE_SETS[name]) or ref["name"].startswith("tidemark-")


# --- the settings the chart produces pass the services' production checks --------------------------------


def fake_secret(var: str, catalog_type: str) -> str:
    """A plausible value for a secret variable, as the user's Secret would hold it."""
    if var.endswith("__DATABASE__URL"):
        return "postgresql+asyncpg://tidemark:pw@postgres.example.com:5432/db"
    if var.endswith("CATALOG_URI"):
        if catalog_type == "rest":
            return "https://catalog.example.com/api/catalog"
        return "postgresql+psycopg://iceberg:pw@postgres.example.com:5432/catalog"
    if var.endswith("__PROPERTIES"):
        return '{"s3.connect-timeout": "5"}'
    if var.endswith("__SECRET_KEY"):
        return Fernet.generate_key().decode()
    if var.endswith("PREVIOUS_SECRET_KEYS"):
        return json.dumps([Fernet.generate_key().decode()])
    return "a-secret-value"


def settings_from(container: dict[str, Any], values: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                  cls: type[BaseSettings], drop: tuple[str, ...] = ()) -> Any:
    catalog_type = values.get("lakehouse", {}).get("catalogType", "sql")
    for key, value in env_of(container).items():
        if key in drop:
            continue
        monkeypatch.setenv(key, fake_secret(key, catalog_type) if isinstance(value, tuple) else value)
    return cls()


@pytest.mark.parametrize("name", SETS)
def test_each_services_environment_passes_its_production_checks(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = rendered(name)
    values = VALUE_SETS[name]
    for svc in SERVICES:
        with monkeypatch.context() as env:
            container = service_container(docs, svc)
            settings = settings_from(container, values, env, SETTINGS[svc], drop=LAUNCHER_UNKNOWN)
            assert settings.platform.environment == "production"
            assert settings.database.url.startswith("postgresql+asyncpg://")
            assert settings.kafka.bootstrap_servers == values["kafka"]["bootstrapServers"]
            assert settings.platform.internal_token is not None
            # The tokens file is where the tokens Secret is mounted.
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert settings.auth.tokens_file.parent == Path(mounts["api-tokens"])
            if hasattr(settings, "connector_url"):
                service = one(docs, "Service", fullname("connector"))
                port = service["spec"]["ports"][0]["port"]
                assert settings.connector_url == f"http://{fullname('connector')}.{NAMESPACE}.svc:{port}"
            if settings.kafka.security_protocol.startswith("SASL_"):
                assert settings.kafka.sasl_password is not None
                assert settings.kafka.sasl_mechanism
            ca = values["kafka"].get("tls", {}).get("caSecret")
            if ca:
                # The CA file the client trusts is the mounted Secret key.
                assert settings.kafka.ssl_cafile == Path(mounts["kafka-ca"]) / ca["key"]
                volumes = one(docs, "Deployment", fullname(svc))["spec"]["template"]["spec"]["volumes"]
                (volume,) = [v for v in volumes if v["name"] == "kafka-ca"]
                assert volume["secret"]["secretName"] == ca["name"]
            else:
                assert settings.kafka.ssl_cafile is None


def test_a_services_plain_settings_reach_it() -> None:
    _, docs = rendered("everything")
    env = env_of(service_container(docs, "orchestrator"))
    assert env["TIDEMARK_ORCHESTRATOR__SCHEDULER_POLL_SECONDS"] == "2"


def test_the_egress_allow_list_reaches_every_service_and_only_when_set() -> None:
    _, docs = rendered("everything")
    for svc in SERVICES:
        settings = env_of(service_container(docs, svc))
        assert settings["TIDEMARK_EGRESS_ALLOW"] == "10.1.0.0/16,minio.internal", svc
    _, defaults = rendered("defaults")
    assert all("TIDEMARK_EGRESS_ALLOW" not in env_of(service_container(defaults, svc)) for svc in SERVICES)


@pytest.mark.parametrize("name", ["defaults", "everything", "external"])
def test_ingest_runs_workers_as_jobs_with_every_worker_secret_mapped_to_the_same_secret_key(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = rendered(name)
    values = VALUE_SETS[name]
    container = service_container(docs, "ingest")
    env = env_of(container)
    assert env["TIDEMARK_INGEST__LAUNCHER"] == "kubernetes"
    kp = "TIDEMARK_INGEST__KUBERNETES__"
    assert env[f"{kp}NAMESPACE"] == NAMESPACE
    assert env[f"{kp}IN_CLUSTER"] == "true"
    image = values.get("image", {})
    default_image = f"{image.get('repository', 'tidemark')}:{image.get('tag', '0.1.0')}"
    assert env["TIDEMARK_INGEST__WORKER_IMAGE"] == values.get("launcher", {}).get("workerImage", default_image)
    launcher = values.get("launcher", {})
    assert json.loads(env[f"{kp}NODE_SELECTOR"]) == launcher.get("nodeSelector", {})
    # The launcher's own field names (toleration_seconds), and quantities as strings even when YAML made a number.
    expected_tolerations = [
        {("toleration_seconds" if k == "tolerationSeconds" else k): v for k, v in t.items()}
        for t in launcher.get("tolerations", [])
    ]
    assert json.loads(env[f"{kp}TOLERATIONS"]) == expected_tolerations
    resources = json.loads(env[f"{kp}RESOURCES"])
    assert resources["requests"].keys() == {"cpu", "memory"}
    assert all(isinstance(q, str) for part in resources.values() for q in part.values())
    if name == "everything":
        assert resources["requests"]["cpu"] == "1"
    run_as = one(docs, "Deployment", fullname("ingest"))["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert env[f"{kp}RUN_AS_USER"] == str(run_as)
    assert int(env[f"{kp}TTL_SECONDS_AFTER_FINISHED"]) > 0
    assert int(env[f"{kp}STUCK_DEADLINE_SECONDS"]) > 0
    assert env[f"{kp}IMAGE_PULL_POLICY"] in ("Always", "IfNotPresent", "Never")
    refs = json.loads(env[f"{kp}SECRET_REFS"])

    settings = settings_from(container, values, monkeypatch, IngestSettings, drop=LAUNCHER_UNKNOWN)
    spec = worker_spec(settings, new_id())
    assert spec.secrets, "a worker needs at least its database URL"
    for ref in spec.secrets:
        # The worker reads each secret from exactly the Secret key ingest-svc reads it from.
        assert ref.name in refs, f"the worker's {ref.name} is not mapped to a Secret"
        source = env[ref.name]
        assert isinstance(source, tuple), ref.name
        assert refs[ref.name] == f"{source[1]}:{source[2]}"
    # Nothing but worker secrets is mapped (Kafka's password stays with the service).
    assert set(refs) == {ref.name for ref in spec.secrets}
    kube = getattr(settings, "kubernetes", None)
    if kube is not None:  # the launcher's settings read the chart's values as the chart meant them
        assert kube.secret_refs == refs
        assert kube.namespace == NAMESPACE
        assert kube.service_account == env[f"{kp}SERVICE_ACCOUNT"]
        assert kube.in_cluster is True
        assert kube.node_selector == launcher.get("nodeSelector", {})
        assert len(kube.tolerations) == len(expected_tolerations)


# --- Ingress, dashboards, NOTES, values schema ------------------------------------------------------------


def test_the_ingress_routes_each_prefix_to_one_service_with_tls() -> None:
    _, docs = rendered("everything")
    (ingress,) = find(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "tidemark-tls", "hosts": ["tidemark.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "tidemark.example.com"
    paths = [p["path"] for p in rule["http"]["paths"]]
    assert len(paths) == len(set(paths))
    services = {s["metadata"]["name"] for s in find(docs, "Service")}
    for p in rule["http"]["paths"]:
        assert p["pathType"] == "Prefix"
        assert p["backend"]["service"]["name"] in services
        assert p["backend"]["service"]["port"] == {"name": "http"}


def test_every_dashboard_json_becomes_a_configmap_for_grafanas_sidecar() -> None:
    link = CHART / "dashboards"
    # Helm reads only files inside the chart; the link makes deploy/grafana (where dashboards live) part of it.
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "deploy" / "grafana").resolve()
    files = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
    _, docs = rendered("everything")
    maps = find(docs, "ConfigMap")
    assert len(maps) == len(files)
    by_key = {key: (m, text) for m in maps for key, text in m["data"].items()}
    for path in files:
        cm, text = by_key[path.name]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(text) == json.loads(path.read_text())
    _, defaults = rendered("defaults")
    assert not find(defaults, "ConfigMap")


@pytest.fixture(scope="session")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt renders as a ConfigMap: ``helm template`` skips NOTES, and
    ``helm install --dry-run`` needs a cluster."""
    copy = tmp_path_factory.mktemp("chart") / "tidemark"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "NOTES.txt").rename(copy / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    return copy


@pytest.mark.parametrize("name", ["defaults", "everything"])
def test_notes_say_how_to_reach_the_api_and_get_a_token(name: str, notes_chart: Path) -> None:
    result = run_helm("template", "tm", str(notes_chart), "--namespace", NAMESPACE,
                      "--show-only", "templates/zz-notes.yaml", values=VALUE_SETS[name])
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    assert "kubectl -n data-platform get secret tidemark-auth -o jsonpath='{.data.tokens}' | base64 -d" in notes
    assert "Authorization: Bearer" in notes or "https://tidemark.example.com/v1/pipelines" in notes
    if name == "defaults":
        assert f"port-forward svc/{fullname('orchestrator')} 8000:80" in notes
    else:
        assert "https://tidemark.example.com/v1/pipelines" in notes


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# Single-field rules live in values.schema.json, so `helm lint` enforces them too; the rules across fields
# (the last ones) are template `fail`s, which stop template/install/upgrade while lint only reports them.
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("no Kafka", {"lakehouse": REQUIRED["lakehouse"]},
     "kafka.bootstrapServers: String length must be greater than or equal to 1"),
    ("no warehouse", {"kafka": REQUIRED["kafka"]},
     "lakehouse.warehouse: String length must be greater than or equal to 1"),
    ("a local warehouse", {"lakehouse": {"warehouse": "file:///data"}}, "lakehouse.warehouse: Does not match pattern"),
    ("a bad bootstrap list", {"kafka": {"bootstrapServers": "kafka"}}, "kafka.bootstrapServers: Does not match"),
    ("SASL without credentials", {"kafka": {"securityProtocol": "SASL_SSL"}},
     "kafka.sasl.passwordSecret.name: String length must be greater than or equal to 1"),
    ("no database Secret", {"database": {"existingSecret": ""}}, "database.existingSecret: Does not match pattern"),
    ("root pods", {"podSecurityContext": {"runAsNonRoot": False}}, "podSecurityContext.runAsNonRoot"),
    ("no cpu request", {"services": {"jobs": {"resources": {"requests": {"cpu": None}}}}},
     "services.jobs.resources.requests: cpu is required"),
    ("an unknown launcher", {"launcher": {"type": "docker"}}, "launcher.type: launcher.type must be one of"),
    ("a typo", {"ingres": {"enabled": True}}, "Additional property ingres is not allowed"),
    ("workers without an account", {"launcher": {"serviceAccount": {"create": False}}},
     "launcher.serviceAccount.name: with create: false, name the workers' existing ServiceAccount"),
    ("an HPA that cannot scale", {"services": {"ingest": {"autoscaling": {"enabled": True, "minReplicas": 4,
                                                                          "maxReplicas": 2}}}},
     "services.ingest.autoscaling: minReplicas (4) exceeds maxReplicas (2)"),
    ("a CA without SSL", {"kafka": {"tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}}}},
     "kafka.tls.caSecret: a CA is used only with kafka.securityProtocol SSL or SASL_SSL"),
    ("a setting the chart owns", {"services": {"jobs": {"settings": {"KAFKA__TOPIC_PREFIX": "other"}}}},
     "services.jobs.settings.KAFKA__TOPIC_PREFIX: the chart sets TIDEMARK_JOBS__KAFKA__TOPIC_PREFIX itself"),
    ("REST credentials on a SQL catalog", {"lakehouse": {"catalogTokenSecret": {"name": "x", "key": "y"}}},
     "only a REST catalog (lakehouse.catalogType: rest) uses them"),
]


CROSS_FIELD = ("workers without an account", "an HPA that cannot scale", "a CA without SSL",
               "a setting the chart owns", "REST credentials on a SQL catalog")


@pytest.mark.parametrize(("case", "bad", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(case: str, bad: dict[str, Any], message: str) -> None:
    values = merge(REQUIRED, bad) if case not in ("no Kafka", "no warehouse") else bad
    result = template(values)
    assert result.returncode != 0, case
    assert message in result.stderr, result.stderr
    lint = run_helm("lint", "--strict", str(CHART), values=values)
    if case in CROSS_FIELD:
        assert message in lint.stderr, lint.stderr
    else:
        assert lint.returncode != 0, case
        assert message in lint.stdout, lint.stdout


def test_the_external_value_set_points_every_service_at_its_own_database_key() -> None:
    _, docs = rendered("external")
    for svc in SERVICES:
        env = env_of(service_container(docs, svc))
        assert env[f"TIDEMARK_{svc.upper()}__DATABASE__URL"] == ("secret", "pg-urls", f"{svc}.dsn")
        assert env["TIDEMARK_INTERNAL_TOKEN"] == ("secret", "platform-internal", "value")
    c = service_container(docs, "ingest")
    assert c["image"] == "registry.example.com/data/tidemark:1.2.3"
    assert c["imagePullPolicy"] == "Always"
    env = env_of(c)
    assert env["TIDEMARK_INGEST__LAKEHOUSE__CATALOG_TYPE"] == "rest"
    assert env["TIDEMARK_INGEST__LAKEHOUSE__AZURE__ACCOUNT_KEY"] == ("secret", "azure-lake", "account-key")
    assert EXTERNAL["lakehouse"]["warehouse"] == env["TIDEMARK_INGEST__LAKEHOUSE__WAREHOUSE"]
