"""The Jobs pages hold the API's authority in a cookie the page's script cannot read, and show no run
data without it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.fixtures.jobs import TOKEN, Pipeline, jobs_app

pytestmark = pytest.mark.unit


async def test_sign_in_sets_a_strict_http_only_cookie_and_redirects_only_within_jobs(tmp_path: Path) -> None:
    async with jobs_app(tmp_path) as jobs:
        p, run_id = Pipeline("secret-pipeline"), uuid.uuid4()
        await jobs.deliver(p.queued(run_id), p.started(run_id))
        anonymous = {"Authorization": ""}
        for path in ("/jobs", f"/jobs/runs/{run_id}", f"/jobs/runs/{run_id}/log"):
            response = await jobs.client.get(path, headers=anonymous)
            assert response.status_code == 401, path
            assert "secret-pipeline" not in response.text
        # A bearer header is the API's way, not the page's: the page wants its cookie.
        assert (await jobs.client.get("/jobs")).status_code == 401

        refused = await jobs.client.post("/jobs/sign-in", content="token=wrong&next=/jobs",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert refused.status_code == 401
        assert "set-cookie" not in refused.headers

        for target, landing in [(f"/jobs/runs/{run_id}", f"/jobs/runs/{run_id}"), ("//evil.example/x", "/jobs"),
                                ("https://evil.example/", "/jobs")]:
            signed = await jobs.client.post(
                "/jobs/sign-in", data={"token": TOKEN, "next": target})
            assert signed.status_code == 303
            assert signed.headers["location"] == landing
        cookie = signed.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/jobs"):
            assert attribute in cookie
        jobs.client.cookies.set("tidemark_token", TOKEN)
        page = await jobs.client.get("/jobs", headers=anonymous)
        assert page.status_code == 200
        assert "secret-pipeline" in page.text
        log = await jobs.client.get(f"/jobs/runs/{run_id}/log", headers=anonymous)
        assert log.json()["live"] is True
        out = await jobs.client.post("/jobs/sign-out")
        assert 'tidemark_token=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
