"""The Jobs pages hold the API's authority in a cookie the page's script cannot read, and show no run
data without it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.fixtures.jobs import TOKEN, Pipeline, jobs_app
from tidemark.settings import PlatformSettings
from tidemark_jobs.pages import csrf_token

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
        log_refused = await jobs.client.get(f"/jobs/runs/{run_id}/log", headers=anonymous)
        assert log_refused.headers["content-type"].startswith("application/problem+json")
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
        out = await jobs.client.post("/jobs/sign-out", data={"csrf": csrf_token(TOKEN)})
        assert out.status_code == 303
        assert 'tidemark_token=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()


async def test_sign_out_needs_the_sessions_csrf_token_and_no_page_post_is_taken_from_another_site(
        tmp_path: Path) -> None:
    async with jobs_app(tmp_path) as jobs:
        jobs.client.cookies.set("tidemark_token", TOKEN)
        page = await jobs.client.get("/jobs", headers={"Authorization": ""})
        assert f'name="csrf" value="{csrf_token(TOKEN)}"' in page.text
        for form in ({}, {"csrf": ""}, {"csrf": csrf_token("another-session")}):
            refused = await jobs.client.post("/jobs/sign-out", data=form)
            assert refused.status_code == 403, form
            assert "set-cookie" not in refused.headers
        # A cross-site form post is refused even with the right field (browsers send Origin or Sec-Fetch-Site).
        for header in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = await jobs.client.post("/jobs/sign-out", data={"csrf": csrf_token(TOKEN)}, headers=header)
            assert refused.status_code == 403, header
            signed = await jobs.client.post("/jobs/sign-in", data={"token": TOKEN, "next": "/jobs"}, headers=header)
            assert signed.status_code == 403, header
            assert "set-cookie" not in signed.headers, header
        for header in ({"Origin": "null"}, {"Origin": "http://test.evil.example"}):
            refused = await jobs.client.post("/jobs/sign-out", data={"csrf": csrf_token(TOKEN)}, headers=header)
            assert refused.status_code == 403, header
        # Behind a TLS-terminating Ingress the page's origin is https while the app sees http: still the page.
        same_site = {"Origin": "https://test", "Sec-Fetch-Site": "same-origin"}
        out = await jobs.client.post("/jobs/sign-out", data={"csrf": csrf_token(TOKEN)}, headers=same_site)
        assert out.status_code == 303


async def test_the_cookie_is_secure_outside_development(tmp_path: Path) -> None:
    async with jobs_app(tmp_path, platform=PlatformSettings(environment="test", home=tmp_path)) as jobs:
        signed = await jobs.client.post("/jobs/sign-in", data={"token": TOKEN, "next": "/jobs"})
        cookie = signed.headers["set-cookie"].lower()
        assert "; secure" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
    async with jobs_app(tmp_path / "dev") as jobs:
        signed = await jobs.client.post("/jobs/sign-in", data={"token": TOKEN, "next": "/jobs"})
        assert "secure" not in signed.headers["set-cookie"].lower()
