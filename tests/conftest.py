"""Every test runs isolated from the developer's environment: no TIDEMARK_* leaks in."""

from __future__ import annotations

import os

import pytest

from tests.fixtures.egress import TEST_EGRESS_ALLOW

pytest_plugins = ["tests.fixtures.infra", "tests.fixtures.storage", "tests.fixtures.pipelines", "tests.fixtures.drift",
                  "tests.fixtures.password_pg"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for key in list(os.environ):
        if key.startswith("TIDEMARK_") and not key.startswith("TIDEMARK_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("TIDEMARK_EGRESS_ALLOW", TEST_EGRESS_ALLOW)
