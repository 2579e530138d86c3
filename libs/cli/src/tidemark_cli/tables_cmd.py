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


# Maintenance runs in the request (ingest-svc's table API): compaction of a big table takes minutes.
MAINTENANCE_TIMEOUT = 3600.0


@tables.command("health")
@click.argument("identifier", metavar="NS.TABLE")
@pass_ctx
def tables_health(ctx: Ctx, identifier: str) -> None:
    """Data files, delete files, average file size, snapshots kept and the last compaction."""
    with ctx.client() as client:
        health = client.get(f"{_path(identifier)}/health")
    if ctx.as_json:
        emit_json(health)
        return
    for key in ("data_files", "delete_files", "small_files", "average_file_bytes", "snapshots"):
        click.echo(f"{key.replace('_', ' ')}: {health[key]}")
    click.echo(f"last compaction: {when(health.get('last_compaction')) or 'never'}")


def _maintain(ctx: Ctx, identifier: str, action: str, dry_run: bool) -> None:
    with ctx.client(timeout=MAINTENANCE_TIMEOUT) as client:
        report = client.post(f"{_path(identifier)}/maintenance", json={"action": action, "dry_run": dry_run})
    if ctx.as_json:
        emit_json(report)
        return
    would = "would be " if dry_run else ""
    if action == "compact":
        if not dry_run:
            click.echo(f"data files: {report['data_files_before']} -> {report['data_files_after']}")
        click.echo(f"{report['files_rewritten']} data files and {report['delete_files_folded']} delete files "
                   f"{would}rewritten ({report['bytes_rewritten']} bytes)")
        if report["compaction_abandoned"]:
            click.echo("abandoned: other writers kept committing to the table; run it again later")
    elif action == "expire":
        click.echo(f"{report['snapshots_expired']} snapshots {would}expired, {report['files_deleted']} files "
                   f"{would}deleted")
    else:
        click.echo(f"{len(report['orphan_files'])} orphan files {would}deleted ({report['bytes_reclaimed']} bytes)")
        for path in report["orphan_files"]:
            click.echo(f"  {path}")


@tables.command("compact")
@click.argument("identifier", metavar="NS.TABLE")
@click.option("--dry-run", is_flag=True, help="Only say what would be rewritten.")
@pass_ctx
def tables_compact(ctx: Ctx, identifier: str, dry_run: bool) -> None:
    """Rewrite small data files and fold delete files into their data, in one snapshot."""
    _maintain(ctx, identifier, "compact", dry_run)


@tables.command("expire")
@click.argument("identifier", metavar="NS.TABLE")
@click.option("--dry-run", is_flag=True, help="Only list the snapshots that would be expired.")
@pass_ctx
def tables_expire(ctx: Ctx, identifier: str, dry_run: bool) -> None:
    """Expire snapshots older than 7 days (keeping the last 10 and the one holding the cursor)."""
    _maintain(ctx, identifier, "expire", dry_run)


@tables.command("clean")
@click.argument("identifier", metavar="NS.TABLE")
@click.option("--dry-run", is_flag=True, help="Only list the orphan files.")
@pass_ctx
def tables_clean(ctx: Ctx, identifier: str, dry_run: bool) -> None:
    """Delete files no snapshot references that are older than 3 days."""
    _maintain(ctx, identifier, "clean", dry_run)
