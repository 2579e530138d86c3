"""``tidemark connections ...``: everything /v1/connections and /v1/connector-types do."""

from __future__ import annotations

from pathlib import Path

import click

from tidemark_cli.context import Ctx, delete_named, parse_config, pass_ctx
from tidemark_cli.output import emit, emit_json, record, table, when

COLUMNS = ["id", "name", "type", "created_at"]
config_options = [
    click.option("--config", help="Config as JSON."),
    click.option("--config-file", type=click.Path(exists=True, path_type=Path), help="Config from a JSON file."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="One config field (repeatable)."),
]


def with_config_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(config_options):
        fn = option(fn)
    return fn


@click.group()
def connections() -> None:
    """Connections to sources."""


@connections.command("types")
@pass_ctx
def connections_types(ctx: Ctx) -> None:
    """The connector types this platform has, with their secret fields."""
    with ctx.client() as client:
        types = client.get("/v1/connector-types")
    if ctx.as_json:
        emit_json(types)
        return
    emit(types, False, ["type", "title", "secret_fields"])


@connections.command("create")
@click.option("--name", required=True)
@click.option("--type", "type_", required=True, help="Connector type, e.g. sqlite, postgres.")
@with_config_options
@pass_ctx
def connections_create(ctx: Ctx, name: str, type_: str, config: str | None, config_file: Path | None,
                       sets: tuple[str, ...]) -> None:
    """Create a connection (secrets are stored encrypted and never shown again)."""
    body = {"name": name, "type": type_, "config": parse_config(config, config_file, sets)}
    with ctx.client() as client:
        emit(client.post("/v1/connections", json=body), ctx.as_json, ["id", "name", "type"])


@connections.command("list")
@pass_ctx
def connections_list(ctx: Ctx) -> None:
    """Every connection."""
    with ctx.client() as client:
        emit(client.get("/v1/connections"), ctx.as_json, COLUMNS)


@connections.command("show")
@click.argument("connection")
@pass_ctx
def connections_show(ctx: Ctx, connection: str) -> None:
    """One connection with its config (secrets masked)."""
    with ctx.client() as client:
        found = client.resolve("connections", connection)
    if ctx.as_json:
        emit_json(found)
        return
    click.echo(record([("id", found["id"]), ("name", found["name"]), ("type", found["type"]),
                       ("created", when(found["created_at"])), ("updated", when(found["updated_at"]))]))
    click.echo("\nConfig")
    click.echo(table([{"key": k, "value": v} for k, v in found["config"].items()]))


@connections.command("update")
@click.argument("connection")
@click.option("--name", "new_name", help="Rename the connection.")
@with_config_options
@pass_ctx
def connections_update(ctx: Ctx, connection: str, new_name: str | None, config: str | None,
                       config_file: Path | None, sets: tuple[str, ...]) -> None:
    """Rename a connection and/or change config fields; the fields given are merged onto the stored
    config (a secret left out keeps its stored value) and the result is validated again."""
    changes = parse_config(config, config_file, sets)
    if new_name is None and not changes:
        raise click.UsageError("nothing to change: give --name, --set, --config or --config-file")
    body: dict[str, object] = {}
    if new_name is not None:
        body["name"] = new_name
    if changes:
        body["config"] = changes
    with ctx.client() as client:
        found = client.resolve("connections", connection)
        emit(client.patch(f"/v1/connections/{found['id']}", json=body), ctx.as_json, [*COLUMNS[:3], "updated_at"])


@connections.command("delete")
@click.argument("connection")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def connections_delete(ctx: Ctx, connection: str, yes: bool) -> None:
    """Delete a connection and its stored secrets."""
    delete_named(ctx, "connections", connection, yes)


@connections.command("check")
@click.argument("connection")
@pass_ctx
def connections_check(ctx: Ctx, connection: str) -> None:
    """Check that Tidemark can reach and read a source (exit 1 when it cannot)."""
    with ctx.client() as client:
        found = client.resolve("connections", connection)
        result = client.post(f"/v1/connections/{found['id']}/check")
    if ctx.as_json:
        emit_json(result)
    else:
        facts = [(k, result.get(k)) for k in ("status", "kind", "message")]
        click.echo(record([(k, v) for k, v in facts if v is not None]))
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
        emit_json(catalog)
        return
    rows = [{"stream": s["name"], "columns": len(s["columns"]), "primary_key": s["primary_key"],
             "cursor_candidates": s["cursor_candidates"]} for s in catalog["streams"]]
    emit(rows, False)
