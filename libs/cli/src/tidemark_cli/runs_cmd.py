"""``tidemark runs ...``: the runs read model (/v1/runs)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import click

from tidemark_cli.context import Ctx, pass_ctx
from tidemark_cli.output import emit, emit_json
from tidemark_cli.views import log_line, show_run

COLUMNS = ["run_id", "pipeline_name", "status", "trigger", "queued_at", "finished_at", "rows_written", "error"]
UPCOMING_COLUMNS = ["run_id", "pipeline_name", "status", "trigger", "scheduled_for"]
STATUSES = ["scheduled", "queued", "starting", "running", "succeeded", "partially_succeeded", "failed", "cancelled"]
TRIGGERS = ["schedule", "manual", "dependency", "retry"]
SORTS = ["newest", "oldest", "scheduled_for", "-scheduled_for", "started_at", "-started_at", "finished_at",
         "-finished_at"]


@click.group()
def runs() -> None:
    """Runs: queued, running, succeeded, failed and cancelled."""


TIME = click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"])
RANGES = ["scheduled_after", "scheduled_before", "started_after", "started_before", "finished_after",
          "finished_before"]


def _ranges(command: Any) -> Any:
    for name in reversed(RANGES):
        flag = "--" + name.replace("_", "-")
        what, edge = name.split("_")
        help_text = (f"Only runs {what} {'from' if edge == 'after' else 'before'} this time "
                     "(ISO 8601; UTC when no zone is given).")
        command = click.option(flag, name, type=TIME, help=help_text)(command)
    return command


@runs.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Filter (repeatable).")
@click.option("--pipeline", "pipelines", multiple=True, help="Pipeline id or name (repeatable).")
@click.option("--connection", "connections", multiple=True, help="Connection id or name (repeatable).")
@click.option("--trigger", "triggers", multiple=True, type=click.Choice(TRIGGERS), help="Filter (repeatable).")
@click.option("--search", "text", help="Text in the pipeline's name (any case).")
@_ranges
@click.option("--sort", type=click.Choice(SORTS), default="newest", show_default=True,
              help="`newest`: by the time runs were queued, upcoming ones after them, soonest first.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="Continue after a previous page (its `next page:` cursor).")
@pass_ctx
def runs_list(ctx: Ctx, /, statuses: tuple[str, ...], pipelines: tuple[str, ...], connections: tuple[str, ...],
              triggers: tuple[str, ...], text: str | None, sort: str, limit: int, cursor: str | None,
              **ranges: Any) -> None:
    """Runs, newest first; upcoming (scheduled) runs after them, soonest first (`--status scheduled`
    lists only those, with the time each is scheduled for). Below the table: how many runs of each
    status the other filters match, and the cursor of the next page. With --json: the runs only."""
    params: dict[str, Any] = {"status": list(statuses), "trigger": list(triggers), "sort": sort, "limit": limit}
    for name, value in ranges.items():
        if value is not None:
            params[name] = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if text:
        params["q"] = text
    if cursor:
        params["cursor"] = cursor
    with ctx.client() as client:
        params["pipeline_id"] = [client.resolve("pipelines", p)["id"] for p in pipelines]
        params["connection_id"] = [client.resolve("connections", c)["id"] for c in connections]
        found = client.get("/v1/runs", params=params)
    if ctx.as_json:
        emit_json(found["items"])
        return
    emit(found["items"], False, UPCOMING_COLUMNS if set(statuses) == {"scheduled"} else COLUMNS)
    counts = ", ".join(f"{n} {s}" for s, n in found["totals"].items() if n)
    click.echo(f"\ntotals: {counts or 'no runs'}")
    if found["next_cursor"]:
        click.echo(f"next page: --cursor {found['next_cursor']}")


@runs.command("show")
@click.argument("run_id", type=click.UUID)
@pass_ctx
def runs_show(ctx: Ctx, run_id: object) -> None:
    """One run: its status, times, error and what to do about it, its timeline, attempts, each
    stream's outcome and any warnings."""
    with ctx.client() as client:
        run = client.get(f"/v1/runs/{run_id}")
    if ctx.as_json:
        emit_json(run)
    else:
        click.echo(show_run(run))


@runs.command("cancel")
@click.argument("run_id", type=click.UUID)
@click.option("--pipeline", help="The run's pipeline (id or name); found from the run when left out.")
@pass_ctx
def runs_cancel(ctx: Ctx, run_id: object, pipeline: str | None) -> None:
    """Cancel a run. A queued run is cancelled at once; a starting or running one has its worker
    stopped (nothing it was loading is committed) and ends cancelled shortly after: follow it with
    `tidemark runs show RUN_ID`. A run that already ended is refused."""
    with ctx.client() as client:
        # Commands on runs go to the orchestrator, under the run's pipeline; jobs-svc knows which
        # (a run triggered a moment ago may not be there yet: then name its --pipeline).
        if pipeline:
            pipeline_id = client.resolve("pipelines", pipeline)["id"]
        else:
            pipeline_id = client.get(f"/v1/runs/{run_id}")["pipeline_id"]
        answer = client.post(f"/v1/pipelines/{pipeline_id}/runs/{run_id}/cancel")
    if ctx.as_json:
        emit_json(answer)
    elif answer["outcome"] == "cancelled":
        click.echo(f"run {run_id} cancelled (it had not started)")
    else:
        click.echo(f"run {run_id}: cancel requested; its worker is being stopped "
                   f"(follow it with: tidemark runs show {run_id})")


@runs.command("logs")
@click.argument("run_id", type=click.UUID)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records until the run ends.")
@click.option("--after", type=int, help="Only records after this sequence number.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.1, 60), help="Seconds between polls.")
@pass_ctx
def runs_logs(ctx: Ctx, run_id: object, follow: bool, after: int | None, poll: float) -> None:
    """The run's worker log (structured records, secrets scrubbed), oldest first; --json prints one
    JSON object per line."""
    with ctx.client() as client:
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after is not None else {})}
            page = client.get(f"/v1/runs/{run_id}/logs", params=params)
            for item in page["items"]:
                click.echo(json.dumps(item) if ctx.as_json else log_line(item))
            after = page["next_after"]
            if page["items"] and len(page["items"]) == params["limit"]:
                continue  # more are waiting already
            if not (follow and page["live"]):
                break
            time.sleep(poll)
    if page["dropped"] and not ctx.as_json:
        click.echo(f"({page['dropped']} older record(s) were dropped to keep the log bounded)", err=True)
