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
    """Runs: queued, running, succeeded, failed and cancelled."""


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
