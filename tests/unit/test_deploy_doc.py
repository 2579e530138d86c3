"""docs/deploy.md, read as the platform team following it would: the Secrets its commands create are the ones
the chart reads by default, its example values pass `helm lint --strict` and render, every value it names
exists in values.yaml, and every object its commands name (release `tidemark`) is one the chart renders."""

from __future__ import annotations

import re
import shlex
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.fixtures.helm import CHART, NAMESPACE, REQUIRED, ROOT, run_helm
from tidemark_testing.nested import mappings

pytestmark = pytest.mark.unit

DOC = (ROOT / "docs" / "deploy.md").read_text()
RELEASE = "tidemark"  # the release name the page's commands use
# Named on the page as what the schema refuses, not as values to set.
REFUSED_EXAMPLES = {"kafka.sasl.password", "services.ingest.settings.LAKEHOUSE__S3__SECRET_ACCESS_KEY"}


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.S | re.M)
    assert match, f"docs/deploy.md has no section {title!r}"
    return match.group(1)


def shell_commands(text: str) -> list[list[str]]:
    """Each command of the page's bash blocks, continuation lines joined, as argv."""
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv: list[str] = []
            for token in lexer:
                if token in ("|", "||", "&&", ";", "(", ")", "$"):
                    commands.append(argv)
                    argv = []
                else:
                    argv.append(token)
            commands.append(argv)
    return [argv for argv in commands if argv]


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def secret_reads(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(Secret, key) of every secretKeyRef and every mounted Secret item of the rendered objects."""
    found: set[tuple[str, str]] = set()
    for node in mappings(docs):
        if "secretKeyRef" in node:
            found.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        secret = node.get("secret")
        if isinstance(secret, dict) and "secretName" in secret:
            found.update((secret["secretName"], item["key"]) for item in secret.get("items", []))
    return found


def test_the_secrets_the_page_creates_are_exactly_the_ones_the_chart_reads_by_default() -> None:
    created: set[tuple[str, str]] = set()
    for argv in shell_commands(section("2. Create the Secrets")):
        if argv[:1] != ["kubectl"] or "secret" not in argv:
            continue
        name = argv[argv.index("generic") + 1]
        for arg in argv:
            if arg.startswith(("--from-literal=", "--from-file=")):
                created.add((name, arg.split("=", 2)[1]))
    assert created, "no `kubectl create secret` command found in section 2"
    assert secret_reads(render(REQUIRED)) == created


def test_the_example_values_pass_lint_and_render_valid_objects() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", section("3. Write the values"), re.S)
    values = yaml.safe_load(example)
    lint = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, values=values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(values)
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    # The Secrets it adds to section 2's are read from where it says.
    reads = secret_reads(docs)
    assert {("kafka-credentials", "password"), ("lake-s3", "secret-access-key"), ("lake-s3", "access-key-id")} <= reads
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    assert ingress["spec"]["rules"][0]["host"] == values["ingress"]["host"]


def test_every_value_the_page_names_exists_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    prose = re.sub(r"```.*?```", "", DOC, flags=re.S)
    named = {
        word
        for code in re.findall(r"`([^`]+)`", prose)
        for word in re.split(r"[,\s]+", code)
        if re.fullmatch(r"[a-zA-Z][\w<>*]*(\.[\w<>*]+)+", word) and word.split(".")[0] in values
    }
    # Service settings (auth.tokens_file) are not chart values; the page names them as such.
    named = {w for w in named if not re.search(r"\.[a-z]+_[a-z_]+$", w)} - REFUSED_EXAMPLES
    assert len(named) > 30, sorted(named)
    missing = []
    for path in sorted(named):
        node: Any = values
        for key in path.split("."):
            if key == "*":
                break
            key = "connector" if key == "<service>" else key
            if not isinstance(node, dict) or key not in node:
                missing.append(path)
                break
            node = node[key]
    assert not missing, f"docs/deploy.md names values that values.yaml lacks: {missing}"


def test_every_object_the_pages_commands_name_is_rendered() -> None:
    docs = render(REQUIRED)
    rendered = {(d["kind"].lower(), d["metadata"]["name"]) for d in docs}
    kinds = {"svc": "service", "deployment": "deployment", "job": "job"}
    named = set()
    for argv in shell_commands(DOC):
        for arg in argv:
            match = re.fullmatch(r"(svc|deployment|job)/([a-z0-9-]+)", arg)
            if match and argv[:1] == ["kubectl"]:
                named.add((kinds[match.group(1)], match.group(2)))
    assert ("service", "tidemark-orchestrator") in named
    assert named <= rendered, sorted(named - rendered)
    # The hook Job the page tells you to read the logs of.
    assert "kubectl -n $NS logs job/tidemark-migrate --all-containers" in DOC
    assert ("job", "tidemark-migrate") in rendered
