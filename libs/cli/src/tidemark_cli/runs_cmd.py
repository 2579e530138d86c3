"""``tidemark runs ...``: the runs read model (/v1/runs)."""

from __future__ import annotations

from typing import Any

import click

from tidemark_cli.context import Ctx, pass_ctx
from tidemark_cli.output import emit, emit_json
from tidemark_cli.views import show_run

COLUMNS = ["run_id", "pipeline_name", "status", "trigger", "requested_at", "finished_at", "rows_written", "error"]
UPCOMING_COLUMNS = ["run_id", "pipeline_name", "status", "trigger", "scheduled_for"]
STATUSES = ["scheduled", "queued", "starting", "running", "succeeded", "partially_succeeded", "failed", "cancelled"]


@click.group()
def runs() -> None:
    """Runs: queued, running, succeeded and failed."""


@runs.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Filter (repeatable).")
@click.option("--pipeline", help="Pipeline id or name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@pass_ctx
def runs_list(ctx: Ctx, statuses: tuple[str, ...], pipeline: str | None, limit: int) -> None:
    """Runs, newest first; upcoming (scheduled) runs after them, soonest first (`--status scheduled`
    lists only those, with the time each is scheduled for)."""
    params: dict[str, Any] = {"status": list(statuses), "limit": limit}
    with ctx.client() as client:
        if pipeline:
            params["pipeline_id"] = client.resolve("pipelines", pipeline)["id"]
        found = client.get("/v1/runs", params=params)
    emit(found, ctx.as_json, UPCOMING_COLUMNS if set(statuses) == {"scheduled"} else COLUMNS)


@runs.command("show")
@click.argument("run_id", type=click.UUID)
@pass_ctx
def runs_show(ctx: Ctx, run_id: object) -> None:
    """One run: its status, times and error, each stream's outcome and any warnings."""
    with ctx.client() as client:
        run = client.get(f"/v1/runs/{run_id}")
    if ctx.as_json:
        emit_json(run)
    else:
        click.echo(show_run(run))
