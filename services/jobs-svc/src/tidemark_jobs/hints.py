"""A short hint of what to do about a run's error, by its kind (and a few well-known causes)."""

from __future__ import annotations

_BY_KIND = {
    "config": "Retrying as it is will fail the same way: fix the connection or pipeline setting the error "
              "names (PATCH /v1/pipelines/{id} or /v1/connections/{id}), then run the pipeline again.",
    "transient": "Something the run depends on was unavailable; a retry can succeed (the pipeline's retry "
                 "policy retries it when it has one; otherwise run it again).",
    "terminal": "Retrying will fail the same way: read the run's log (GET /v1/runs/{id}/logs) for the cause; "
                "if it is a bug, report it with the log.",
}


def hint(message: str | None, kind: str | None) -> str | None:
    if message is None:
        return None
    if message.startswith("timeout"):
        return ("The run took longer than its pipeline's timeout_seconds: raise the limit, or load less per "
                "run (incremental mode, fewer streams).")
    if message.startswith("cancelled"):
        return "The run was cancelled; nothing it was loading was committed. Run the pipeline again when needed."
    if "heartbeat" in message or "vanished" in message:
        return ("The worker stopped answering (killed, out of memory, or its node went away); a retry can "
                "succeed. Check the worker's resources if it happens again.")
    return _BY_KIND.get(kind or "")
