"""Bulk API 2.0 query jobs: create, wait until complete, read the CSV results page by page.

https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm,
``query_get_one_job.htm`` and ``query_get_job_results.htm``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

from tidemark.connectors.rest.http import RestClient
from tidemark.errors import FailureKind, SourceError


def bulk_query(client: RestClient, version: str, soql: str, *, query_all: bool, poll_seconds: float,
               page_records: int, sleep: Callable[[float], None] = time.sleep,
               timeout_seconds: float = 6 * 3600) -> Iterator[dict[str, Any]]:
    """The records of ``soql`` as dicts of text values (``None`` for empty)."""
    jobs = f"/services/data/{version}/jobs/query"
    job = client.json("POST", jobs, what="create a Salesforce Bulk API query job",
                      json={"operation": "queryAll" if query_all else "query", "query": soql})
    job_id = job["id"]
    waited = 0.0
    while job.get("state") not in {"JobComplete"}:
        if job.get("state") in {"Failed", "Aborted"}:
            raise SourceError(f"the Salesforce Bulk API job {job_id} {str(job['state']).lower()}: "
                              f"{job.get('errorMessage') or 'no reason given'}", FailureKind.TERMINAL)
        if waited > timeout_seconds:
            raise SourceError(f"the Salesforce Bulk API job {job_id} did not complete within "
                              f"{timeout_seconds:.0f} s", FailureKind.TRANSIENT)
        sleep(poll_seconds)
        waited += poll_seconds
        job = client.json("GET", f"{jobs}/{job_id}", what="check a Salesforce Bulk API job")
    locator: str | None = None
    while True:
        params: dict[str, Any] = {"maxRecords": page_records, **({"locator": locator} if locator else {})}
        response = client.request("GET", f"{jobs}/{job_id}/results", what="read Salesforce Bulk API results",
                                  params=params, headers={"Accept": "text/csv"})
        for row in csv.DictReader(io.StringIO(response.text)):
            yield {k: (v if v != "" else None) for k, v in row.items()}
        locator = response.headers.get("Sforce-Locator")
        if not locator or locator == "null":
            return
