"""``tidemark up``: broker, every service, optionally the demo; Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import click
import uvicorn

from tidemark.localbroker import LocalBroker
from tidemark_cli.client import Client
from tidemark_cli.demo import run_demo, wait_ready
from tidemark_cli.embedded import create_embedded_app, prepare


def run_embedded(host: str, port: int, home: Path, demo: bool, log_format: str = "text") -> None:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not external:
        home.mkdir(parents=True, exist_ok=True)
        broker = LocalBroker(log_path=home / "broker.log")
        broker.start()
    bootstrap = external or (broker.bootstrap_servers if broker else "")
    try:
        env = prepare(home, host, port, bootstrap, log_format)
        app = create_embedded_app(env)
        click.echo(f"Tidemark is starting on {env.url}  (home: {env.home}, broker: {bootstrap})")
        click.echo(f"  API docs:  {env.url}/docs")
        click.echo(f"  API token: {env.api_token}   (saved in {env.home / 'token'})")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None))
        if demo:
            threading.Thread(target=_demo, args=(env.url, env.api_token, env.home), daemon=True).start()
        # The demo and the CLI poll; per-request access lines would drown what matters.
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        # uvicorn re-raises the Ctrl-C it handled after a clean shutdown; that is the normal way out.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        click.echo("Tidemark stopped.")
    finally:
        if broker is not None:
            broker.stop()


def _demo(url: str, token: str, home: Path) -> None:
    client = Client(url, token)
    try:
        wait_ready(client)
        click.echo("Demo: loading the bundled sample shop database into Iceberg (namespace `demo`)...")
        run = run_demo(client)
        if run["status"] == "succeeded":
            tables = ", ".join(f"{s['table']} ({s['rows_written']} rows)" for s in run["streams"])
            click.echo(f"Demo run {run['run_id']} succeeded: {tables}")
            click.echo(f"  Warehouse: {home / 'warehouse'}   Catalog: {home / 'catalog.db'}")
            click.echo(f"  Try: uv run tidemark runs list   |   curl -H 'Authorization: Bearer {token}' "
                       f"{url}/v1/runs")
        else:
            click.echo(f"Demo run {run['run_id']} ended {run['status']}: {run.get('error')}", err=True)
        click.echo("Tidemark keeps running; press Ctrl-C to stop it.")
    except Exception as exc:  # the demo must never take the platform down
        click.echo(f"Demo failed: {exc}", err=True)
    finally:
        client.close()
