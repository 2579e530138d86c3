"""``tidemark pipelines ...``: everything /v1/pipelines does."""

from __future__ import annotations

from typing import Any

import click

from tidemark_cli.client import Client
from tidemark_cli.context import Ctx, confirm, pass_ctx
from tidemark_cli.output import emit, emit_json, record, table, when
from tidemark_cli.views import run_exit_code, show_run

COLUMNS = ["id", "name", "status", "schedule", "streams"]
MODES = ["full_refresh", "incremental", "incremental_append"]


@click.group()
def pipelines() -> None:
    """Pipelines: which streams of a connection load where, and how."""


def _key(primary_key: str | None) -> list[str] | None:
    if primary_key is None:
        return None
    return [k.strip() for k in primary_key.split(",") if k.strip()]


def _flat(pipeline: dict[str, Any]) -> dict[str, Any]:
    return {**pipeline, "streams": [s["name"] for s in pipeline["streams"]]}


@pipelines.command("create")
@click.option("--name", required=True)
@click.option("--connection", required=True, help="Connection id or name.")
@click.option("--stream", "streams", multiple=True, required=True, help="Stream name (repeatable).")
@click.option("--mode", type=click.Choice(MODES), default="full_refresh", show_default=True)
@click.option("--cursor-field", help="Cursor column (incremental modes).")
@click.option("--primary-key", help="Comma-separated key columns (incremental).")
@click.option("--namespace", default="tidemark", show_default=True, help="Iceberg namespace.")
@click.option("--table-prefix", default="", help="Prefix added to every table name.")
@click.option("--format", "kind", type=click.Choice(["iceberg", "parquet"]), default="iceberg",
              show_default=True)
@click.option("--schedule", help="Cron expression (UTC).")
@pass_ctx
def pipelines_create(ctx: Ctx, name: str, connection: str, streams: tuple[str, ...], mode: str,
                     cursor_field: str | None, primary_key: str | None, namespace: str, table_prefix: str,
                     kind: str, schedule: str | None) -> None:
    """Create a pipeline; every --stream gets the same mode, cursor and key."""
    with ctx.client() as client:
        conn = client.resolve("connections", connection)
        body = {
            "name": name,
            "connection_id": conn["id"],
            "streams": [{"name": s, "sync_mode": mode, "cursor_field": cursor_field,
                         "primary_key": _key(primary_key) or []} for s in streams],
            "destination": {"kind": kind, "namespace": namespace, "table_prefix": table_prefix},
            "schedule": schedule,
        }
        created = client.post("/v1/pipelines", json=body)
    emit(created if ctx.as_json else _flat(created), ctx.as_json, COLUMNS)


@pipelines.command("list")
@pass_ctx
def pipelines_list(ctx: Ctx) -> None:
    with ctx.client() as client:
        data = client.get("/v1/pipelines")
    emit(data if ctx.as_json else [_flat(p) for p in data], ctx.as_json, COLUMNS)


@pipelines.command("show")
@click.argument("pipeline")
@pass_ctx
def pipelines_show(ctx: Ctx, pipeline: str) -> None:
    """One pipeline: connection, destination, schedule, status and its streams."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
    if ctx.as_json:
        emit_json(found)
        return
    dest = found["destination"]
    click.echo(record([
        ("id", found["id"]), ("name", found["name"]), ("status", found["status"]),
        ("connection", found["connection_id"]), ("schedule", found["schedule"] or "manual only"),
        ("destination", f"{dest['kind']} {dest['namespace']}"
                        + (f" (table prefix {dest['table_prefix']})" if dest.get("table_prefix") else "")),
        ("created", when(found["created_at"])), ("updated", when(found["updated_at"])),
    ]))
    click.echo("\nStreams")
    click.echo(table(found["streams"], ["name", "sync_mode", "cursor_field", "primary_key", "columns"]))


def _streams(current: list[dict[str, Any]], names: tuple[str, ...], mode: str | None, cursor_field: str | None,
             primary_key: list[str] | None) -> list[dict[str, Any]]:
    """The new stream list: the names given (else the current ones), each keeping its current settings
    (columns, lookback, partition) unless an option overrides them."""
    by_name = {s["name"]: s for s in current}
    out = []
    for name in names or tuple(by_name):
        spec = dict(by_name.get(name, {"name": name}))
        if mode is not None:
            spec["sync_mode"] = mode
        if cursor_field is not None:
            spec["cursor_field"] = cursor_field or None
        if primary_key is not None:
            spec["primary_key"] = primary_key
        out.append(spec)
    return out


@pipelines.command("update")
@click.argument("pipeline")
@click.option("--stream", "streams", multiple=True,
              help="Replace the stream list with these streams (repeatable); each keeps its settings if it "
                   "was in the pipeline.")
@click.option("--mode", type=click.Choice(MODES), help="Sync mode of the streams.")
@click.option("--cursor-field", help="Cursor column of the streams (\"\" clears it).")
@click.option("--primary-key", help="Comma-separated key columns of the streams (\"\" clears them).")
@click.option("--namespace", help="Iceberg namespace.")
@click.option("--table-prefix", help="Prefix added to every table name.")
@click.option("--format", "kind", type=click.Choice(["iceberg", "parquet"]), help="Table format.")
@click.option("--schedule", help="Cron expression (UTC).")
@click.option("--no-schedule", is_flag=True, help="Remove the schedule: manual runs only.")
@pass_ctx
def pipelines_update(ctx: Ctx, pipeline: str, streams: tuple[str, ...], mode: str | None,
                     cursor_field: str | None, primary_key: str | None, namespace: str | None,
                     table_prefix: str | None, kind: str | None, schedule: str | None, no_schedule: bool) -> None:
    """Change a pipeline. --mode, --cursor-field and --primary-key apply to every stream of the new list."""
    if schedule is not None and no_schedule:
        raise click.UsageError("--schedule and --no-schedule exclude each other")
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        body: dict[str, Any] = {}
        if streams or mode is not None or cursor_field is not None or primary_key is not None:
            body["streams"] = _streams(found["streams"], streams, mode, cursor_field, _key(primary_key))
        destination = {k: v for k, v in (("namespace", namespace), ("table_prefix", table_prefix),
                                         ("kind", kind)) if v is not None}
        if destination:
            body["destination"] = {**found["destination"], **destination}
        if schedule is not None or no_schedule:
            body["schedule"] = schedule
        if not body:
            raise click.UsageError("nothing to change: give --stream, --mode, --cursor-field, --primary-key, "
                                   "--namespace, --table-prefix, --format, --schedule or --no-schedule")
        _patch_and_emit(ctx, client, found, body)


def _patch_and_emit(ctx: Ctx, client: Client, found: dict[str, Any], body: dict[str, Any]) -> None:
    changed = client.patch(f"/v1/pipelines/{found['id']}", json=body)
    emit(changed if ctx.as_json else _flat(changed), ctx.as_json, COLUMNS)


@pipelines.command("pause")
@click.argument("pipeline")
@pass_ctx
def pipelines_pause(ctx: Ctx, pipeline: str) -> None:
    """Pause a pipeline: no scheduled or manual runs until it is resumed."""
    with ctx.client() as client:
        _patch_and_emit(ctx, client, client.resolve("pipelines", pipeline), {"status": "paused"})


@pipelines.command("resume")
@click.argument("pipeline")
@pass_ctx
def pipelines_resume(ctx: Ctx, pipeline: str) -> None:
    """Resume a paused pipeline."""
    with ctx.client() as client:
        _patch_and_emit(ctx, client, client.resolve("pipelines", pipeline), {"status": "active"})


@pipelines.command("delete")
@click.argument("pipeline")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def pipelines_delete(ctx: Ctx, pipeline: str, yes: bool) -> None:
    """Delete a pipeline (its tables and their data stay in the lakehouse)."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        confirm(yes, f"Delete pipeline {found['name']} ({found['id']})?")
        client.delete(f"/v1/pipelines/{found['id']}")
    if ctx.as_json:
        emit_json({"id": found["id"], "name": found["name"], "deleted": True})
    else:
        click.echo(f"Deleted pipeline {found['name']}.")


@pipelines.command("run")
@click.argument("pipeline")
@click.option("--wait/--no-wait", default=False,
              help="Wait until the run finishes and show its result. Exit status: 0 succeeded, "
                   "1 failed or cancelled, 3 partially succeeded (some streams committed, some failed).")
@click.option("--timeout", default=3600, show_default=True, type=click.IntRange(1),
              help="With --wait: give up waiting after this many seconds (the run goes on; exit 1).")
@click.option("--resync", multiple=True, metavar="STREAM",
              help="Reset this stream's state: read it in full and rewrite its table (repeatable).")
@pass_ctx
def pipelines_run(ctx: Ctx, pipeline: str, wait: bool, timeout: int, resync: tuple[str, ...]) -> None:
    """Trigger a run now."""
    from tidemark_cli.demo import wait_for_run

    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        run = client.post(f"/v1/pipelines/{found['id']}/runs", json={"resync": list(resync)})
        if not wait:
            emit(run, ctx.as_json, ["id", "status", "trigger"])
            return
        try:
            run = wait_for_run(client, run["id"], timeout=timeout)
        except TimeoutError as exc:
            raise click.ClickException(f"{exc}; follow it with: tidemark runs show {run['id']}") from exc
    if ctx.as_json:
        emit_json(run)
    else:
        click.echo(show_run(run))
    code = run_exit_code(run["status"])
    if code:
        raise SystemExit(code)
