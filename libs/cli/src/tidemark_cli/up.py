"""``tidemark up``: broker, every service, optionally the demo; Ctrl-C or SIGTERM stops it all."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click
import uvicorn

from tidemark_cli.client import Client
from tidemark_cli.demo import run_demo, wait_ready
from tidemark_cli.embedded import create_embedded_app, prepare
from tidemark_cli.localbroker import LocalBroker


def run_embedded(host: str, port: int, home: Path, demo: bool, log_format: str = "text") -> None:
    """Run until Ctrl-C or SIGTERM; both shut down cleanly and print "Tidemark stopped."."""
    # A process manager (or `kill`, or make passing on its own SIGTERM) stops us with SIGTERM, whose
    # default action kills Python on the spot: no shutdown, no broker.stop(). Treat it as Ctrl-C.
    # uvicorn handles both signals itself while serving and raises the signal again after its
    # graceful shutdown; then this handler turns it into the KeyboardInterrupt caught below.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run(host, port, home, demo, log_format)
    except KeyboardInterrupt:
        pass  # a stop requested before or after serving; what was started is stopped already
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("Tidemark stopped.")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(host: str, port: int, home: Path, demo: bool, log_format: str) -> None:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not external:
        home.mkdir(parents=True, exist_ok=True)
        broker = LocalBroker(log_path=home / "broker.log")
        broker.start()
    bootstrap = external or (broker.bootstrap_servers if broker else "")
    try:
        env = prepare(home, host, port, bootstrap, log_format, local_broker=broker is not None)
        app = create_embedded_app(env)
        click.echo(f"Tidemark is starting on {env.url}  (home: {env.home}, broker: {bootstrap})")
        click.echo(f"  API docs:  {env.url}/docs")
        click.echo(f"  Jobs page: {env.url}/jobs   (sign in with the API token)")
        click.echo(f"  API token: {env.api_token}   (saved in {env.home / 'token'})")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None))
        if demo:
            threading.Thread(target=_demo, args=(env.url, env.api_token, env.home, server), daemon=True).start()
        # The demo and the CLI poll; per-request access lines would drown what matters.
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        server.run()
    finally:
        if broker is not None:
            broker.stop()


def _demo(url: str, token: str, home: Path, server: uvicorn.Server) -> None:
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
        if not server.should_exit:  # a stop asked for mid-demo is not the demo failing
            click.echo(f"Demo failed: {exc}", err=True)
    finally:
        client.close()
