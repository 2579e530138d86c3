"""``tidemark tables ...``: what was loaded, read through the API (/v1/tables), so it works remotely too."""

from __future__ import annotations

import json
from urllib.parse import quote

import click

from tidemark_cli.context import Ctx, pass_ctx
from tidemark_cli.output import emit_json, table, when
from tidemark_cli.views import show_table


@click.group()
def tables() -> None:
    """Iceberg tables in the lakehouse catalog (not parquet destinations)."""


def _path(identifier: str) -> str:
    return f"/v1/tables/{quote(identifier, safe='')}"


@tables.command("list")
@pass_ctx
def tables_list(ctx: Ctx) -> None:
    """Every table: rows, current snapshot, when it changed, and the pipeline and stream it comes from."""
    with ctx.client() as client:
        data = client.get("/v1/tables")
    if ctx.as_json:
        emit_json(data)
        return
    rows = [{
        "table": t["identifier"], "rows": t.get("row_count"), "snapshot": t.get("current_snapshot_id"),
        "last_updated": when(t.get("last_updated")),
        "pipeline": (t.get("source") or {}).get("pipeline_name"),
        "stream": (t.get("source") or {}).get("stream"),
    } for t in data]
    click.echo(table(rows))


@tables.command("show")
@click.argument("identifier", metavar="NS.TABLE")
@pass_ctx
def tables_show(ctx: Ctx, identifier: str) -> None:
    """Schema, row count, snapshots, the stored cursor, and the pipeline and source stream."""
    with ctx.client() as client:
        detail = client.get(_path(identifier))
    if ctx.as_json:
        emit_json(detail)
    else:
        click.echo(show_table(detail))


@tables.command("preview")
@click.argument("identifier", metavar="NS.TABLE")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def tables_preview(ctx: Ctx, identifier: str, limit: int) -> None:
    """The first rows of the table's current snapshot."""
    with ctx.client() as client:
        preview = client.get(f"{_path(identifier)}/preview", params={"limit": limit})
    if ctx.as_json:
        emit_json(preview)
        return
    # Values as JSON writes them (true, null, 1.5), strings as they are: what a reader of the table gets.
    rows = [{k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in preview["rows"]]
    click.echo(table(rows, preview["columns"], headers={c: c for c in preview["columns"]}))
