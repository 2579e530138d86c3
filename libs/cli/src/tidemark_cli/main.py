"""The ``tidemark`` command line."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tidemark_cli.client import DEFAULT_URL, ApiError, Client, default_token
from tidemark_cli.output import emit


class Ctx:
    def __init__(self, url: str, token: str | None, as_json: bool) -> None:
        self.url = url
        self.token = token
        self.as_json = as_json

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        client = Client(self.url, self.token)
        try:
            yield client
        except ApiError as exc:
            problem = exc.problem
            lines = [str(problem.get("detail") or exc)]
            lines += [f"  {e['field']}: {e['message']}" for e in problem.get("errors", []) if "field" in e]
            raise click.ClickException("\n".join(lines)) from exc
        finally:
            client.close()


pass_ctx = click.make_pass_decorator(Ctx)


@click.group()
@click.option("--url", envvar="TIDEMARK_URL", default=DEFAULT_URL, show_default=True, help="API base URL.")
@click.option("--token", envvar="TIDEMARK_API_TOKEN", default=None,
              help="Bearer token (default: $TIDEMARK_API_TOKEN or $TIDEMARK_HOME/token).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, as_json: bool) -> None:
    """Tidemark: keep a lakehouse in sync with its sources."""
    ctx.obj = Ctx(url, token or default_token(), as_json)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--home", envvar="TIDEMARK_HOME", default=".tidemark", show_default=True,
              type=click.Path(path_type=Path), help="Where databases, warehouse and tokens live.")
@click.option("--demo/--no-demo", default=False, help="Run the demo pipeline once the platform is up.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def up(host: str, port: int, home: Path, demo: bool, log_format: str) -> None:
    """Start the whole platform in this process (embedded mode) until Ctrl-C."""
    from tidemark_cli.up import run_embedded

    run_embedded(host, port, home, demo, log_format)


# --- connections -----------------------------------------------------------------------------

@cli.group()
def connections() -> None:
    """Connections to sources."""


def _config(config: str | None, config_file: Path | None, sets: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    try:
        if config_file is not None:
            data.update(json.loads(config_file.read_text()))
        if config:
            data.update(json.loads(config))
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--config") from exc
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


@connections.command("create")
@click.option("--name", required=True)
@click.option("--type", "type_", required=True, help="Connector type, e.g. sqlite, postgres.")
@click.option("--config", help="Config as JSON.")
@click.option("--config-file", type=click.Path(exists=True, path_type=Path), help="Config from a JSON file.")
@click.option("--set", "sets", multiple=True, help="One config field, KEY=VALUE (repeatable).")
@pass_ctx
def connections_create(ctx: Ctx, name: str, type_: str, config: str | None, config_file: Path | None,
                       sets: tuple[str, ...]) -> None:
    """Create a connection (secrets are stored encrypted and never shown again)."""
    body = {"name": name, "type": type_, "config": _config(config, config_file, sets)}
    with ctx.client() as client:
        emit(client.post("/v1/connections", json=body), ctx.as_json, ["id", "name", "type"])


@connections.command("list")
@pass_ctx
def connections_list(ctx: Ctx) -> None:
    with ctx.client() as client:
        emit(client.get("/v1/connections"), ctx.as_json, ["id", "name", "type", "created_at"])


@connections.command("check")
@click.argument("connection")
@pass_ctx
def connections_check(ctx: Ctx, connection: str) -> None:
    """Check that Tidemark can reach and read a source."""
    with ctx.client() as client:
        found = client.resolve("connections", connection)
        result = client.post(f"/v1/connections/{found['id']}/check")
    emit(result, ctx.as_json)
    if result.get("status") != "succeeded":
        raise SystemExit(1)


@connections.command("discover")
@click.argument("connection")
@pass_ctx
def connections_discover(ctx: Ctx, connection: str) -> None:
    """List the streams of a source with their columns, keys and cursor candidates."""
    with ctx.client() as client:
        found = client.resolve("connections", connection)
        catalog = client.post(f"/v1/connections/{found['id']}/discover")
    if ctx.as_json:
        emit(catalog, True)
        return
    rows = [{"stream": s["name"], "columns": len(s["columns"]), "primary_key": s["primary_key"],
             "cursor_candidates": s["cursor_candidates"]} for s in catalog["streams"]]
    emit(rows, False)


# --- pipelines -------------------------------------------------------------------------------

@cli.group()
def pipelines() -> None:
    """Pipelines: which streams of a connection load where, and how."""


@pipelines.command("create")
@click.option("--name", required=True)
@click.option("--connection", required=True, help="Connection id or name.")
@click.option("--stream", "streams", multiple=True, required=True, help="Stream name (repeatable).")
@click.option("--mode", type=click.Choice(["full_refresh", "incremental", "incremental_append"]),
              default="full_refresh", show_default=True)
@click.option("--cursor-field", help="Cursor column (incremental modes).")
@click.option("--primary-key", help="Comma-separated key columns (incremental).")
@click.option("--namespace", default="tidemark", show_default=True, help="Iceberg namespace.")
@click.option("--format", "kind", type=click.Choice(["iceberg", "parquet"]), default="iceberg",
              show_default=True)
@click.option("--schedule", help="Cron expression (UTC).")
@pass_ctx
def pipelines_create(ctx: Ctx, name: str, connection: str, streams: tuple[str, ...], mode: str,
                     cursor_field: str | None, primary_key: str | None, namespace: str, kind: str,
                     schedule: str | None) -> None:
    key = [k.strip() for k in primary_key.split(",") if k.strip()] if primary_key else []
    with ctx.client() as client:
        conn = client.resolve("connections", connection)
        body = {
            "name": name,
            "connection_id": conn["id"],
            "streams": [{"name": s, "sync_mode": mode, "cursor_field": cursor_field, "primary_key": key}
                        for s in streams],
            "destination": {"kind": kind, "namespace": namespace},
            "schedule": schedule,
        }
        emit(client.post("/v1/pipelines", json=body), ctx.as_json, ["id", "name", "status", "schedule"])


@pipelines.command("list")
@pass_ctx
def pipelines_list(ctx: Ctx) -> None:
    with ctx.client() as client:
        data = client.get("/v1/pipelines")
    if not ctx.as_json:
        data = [{**p, "streams": [s["name"] for s in p["streams"]]} for p in data]
    emit(data, ctx.as_json, ["id", "name", "status", "schedule", "streams"])


@pipelines.command("run")
@click.argument("pipeline")
@click.option("--wait/--no-wait", default=False, help="Wait until the run finishes.")
@click.option("--resync", multiple=True, metavar="STREAM",
              help="Reset this stream's state: read it in full and rewrite its table (repeatable).")
@pass_ctx
def pipelines_run(ctx: Ctx, pipeline: str, wait: bool, resync: tuple[str, ...]) -> None:
    """Trigger a run now."""
    from tidemark_cli.demo import wait_for_run

    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        run = client.post(f"/v1/pipelines/{found['id']}/runs", json={"resync": list(resync)})
        if wait:
            run = wait_for_run(client, run["id"])
    emit(run, ctx.as_json, ["id" if "id" in run else "run_id", "status", "rows_written" if wait else "trigger"])
    if wait and run["status"] != "succeeded":
        raise SystemExit(1)


# --- runs ------------------------------------------------------------------------------------

@cli.group()
def runs() -> None:
    """Runs: queued, running, succeeded and failed."""


RUN_COLUMNS = ["run_id", "pipeline_name", "status", "trigger", "requested_at", "finished_at", "rows_written",
               "error"]


@runs.command("list")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["scheduled", "queued", "starting", "running", "succeeded",
                                 "partially_succeeded", "failed", "cancelled"]), help="Filter (repeatable).")
@click.option("--pipeline", help="Pipeline id or name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@pass_ctx
def runs_list(ctx: Ctx, statuses: tuple[str, ...], pipeline: str | None, limit: int) -> None:
    params: dict[str, Any] = {"status": list(statuses), "limit": limit}
    with ctx.client() as client:
        if pipeline:
            params["pipeline_id"] = client.resolve("pipelines", pipeline)["id"]
        emit(client.get("/v1/runs", params=params), ctx.as_json, RUN_COLUMNS)


@runs.command("show")
@click.argument("run_id")
@pass_ctx
def runs_show(ctx: Ctx, run_id: str) -> None:
    with ctx.client() as client:
        emit(client.get(f"/v1/runs/{run_id}"), ctx.as_json)


# --- contracts -------------------------------------------------------------------------------

@cli.command()
@click.option("--out", default="docs/contracts", show_default=True, type=click.Path(path_type=Path))
def contracts(out: Path) -> None:
    """Export the event contracts as JSON Schema files for other platforms."""
    from tidemark.events.export import export_schemas

    for path in export_schemas(out):
        click.echo(str(path))
