"""The Jobs page's sign-out in a real browser (headless Chromium): the page's own button works (it carries
the session's CSRF token), and a page of another origin on the same host (so the SameSite=Strict cookie
is sent: another port is the same site) that auto-submits a sign-out form is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.browser import browser  # noqa: F401 - a fixture
from tests.fixtures.jobs import TOKEN, JobsServer

pytestmark = pytest.mark.unit


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JobsServer]:
    with JobsServer(tmp_path) as running:
        yield running


@pytest.fixture
def evil(server: JobsServer) -> Iterator[str]:
    """Another origin on 127.0.0.1 whose page posts a sign-out form to the Jobs page as soon as it loads."""
    page = (f'<form id="f" method="post" action="{server.url}/jobs/sign-out">'
            '<input name="csrf" value="guessed"></form><script>document.getElementById("f").submit()</script>')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sign_out_works_from_the_page_and_not_from_another_origin(browser: Any, server: JobsServer,  # noqa: F811
                                                                   evil: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(server.url + "/jobs")
        page.fill("#token", TOKEN)
        page.click("#sign-in")
        page.wait_for_url(server.url + "/jobs")
        assert page.locator("#sign-in").count() == 0
        assert any(c["name"] == "tidemark_token" for c in context.cookies())

        attack = context.new_page()
        response = attack.goto(evil)
        attack.wait_for_selector("#forbidden")  # the form was posted, and refused
        assert response is not None
        assert any(c["name"] == "tidemark_token" for c in context.cookies())
        page.reload()
        assert page.locator("#sign-in").count() == 0  # still signed in

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#sign-in")
        assert not any(c["name"] == "tidemark_token" for c in context.cookies())
    finally:
        context.close()
