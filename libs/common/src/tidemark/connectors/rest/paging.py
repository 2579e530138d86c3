"""The vendors' paging styles, each a generator of response bodies; a page that does not
advance fails the read instead of looping forever."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tidemark.connectors.rest.http import RestClient
from tidemark.errors import FailureKind, SourceError


def _stuck(client: RestClient, what: str) -> SourceError:
    return SourceError(f"{client.advice.vendor} returned the same page twice while paging to {what}",
                       FailureKind.TERMINAL)


def cursor_pages(client: RestClient, method: str, url: str, *, what: str, name: str,
                 next_cursor: Callable[[Any], str | None], params: dict[str, Any] | None = None,
                 body: dict[str, Any] | None = None) -> Iterator[Any]:
    """A cursor the body names is sent back as ``name`` (query for GET, body for POST):
    HubSpot's ``paging.next.after``, Jira's ``nextPageToken``."""
    cursor: str | None = None
    while True:
        if method == "GET":
            page = client.json("GET", url, what=what, params={**(params or {}), **({name: cursor} if cursor else {})})
        else:
            page = client.json(method, url, what=what, params=params,
                               json={**(body or {}), **({name: cursor} if cursor else {})})
        yield page
        following = next_cursor(page)
        if not following:
            return
        if following == cursor:
            raise _stuck(client, what)
        cursor = following


def next_url_pages(client: RestClient, url: str, *, what: str, next_url: Callable[[Any], str | None],
                   params: dict[str, Any] | None = None) -> Iterator[Any]:
    """Each body names the URL of the next (Salesforce's ``nextRecordsUrl``)."""
    page = client.json("GET", url, what=what, params=params)
    while True:
        yield page
        following = next_url(page)
        if not following:
            return
        if following == url:
            raise _stuck(client, what)
        url = following
        page = client.json("GET", url, what=what)


def offset_pages(client: RestClient, url: str, *, what: str, items: Callable[[Any], list[Any]],
                 page_size: int, params: dict[str, Any] | None = None, start: str = "startAt",
                 size: str = "maxResults", short_page_ends: bool = True) -> Iterator[list[Any]]:
    """``startAt``/``maxResults`` paging (Jira): the items of each page until ``isLast``, an
    empty page, or (``short_page_ends``) a short one; Jira's user search filters pages after
    cutting them, so there only an empty page ends."""
    offset = 0
    while True:
        page = client.json("GET", url, what=what, params={**(params or {}), start: offset, size: page_size})
        found = items(page)
        yield found
        if not found or (isinstance(page, dict) and page.get("isLast") is True):
            return
        if short_page_ends and len(found) < page_size and not (isinstance(page, dict) and "isLast" in page):
            return
        # A filtered page is short but still covers page_size positions; a capped one covers what it holds.
        offset += len(found) if short_page_ends else page_size
