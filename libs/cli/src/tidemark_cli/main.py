"""The ``tidemark`` command line. Each command group lives in its own module."""

from __future__ import annotations

from pathlib import Path

import click

from tidemark_cli.client import DEFAULT_URL, default_token
from tidemark_cli.connections_cmd import connections
from tidemark_cli.context import Ctx
from tidemark_cli.pipelines_cmd import pipelines
from tidemark_cli.runs_cmd import runs
from tidemark_cli.tables_cmd import tables
from tidemark_cli.tokens_cmd import tokens


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


@cli.command()
@click.option("--out", default="docs/contracts", show_default=True, type=click.Path(path_type=Path))
def contracts(out: Path) -> None:
    """Export the event contracts as JSON Schema files for other platforms."""
    from tidemark.events.export import export_schemas

    for path in export_schemas(out):
        click.echo(str(path))


cli.add_command(connections)
cli.add_command(pipelines)
cli.add_command(runs)
cli.add_command(tables)
cli.add_command(tokens)
