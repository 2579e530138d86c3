"""The command line every service shares: ``tidemark-<svc>-svc serve|migrate``, plus a service's own
commands (jobs-svc's ``rebuild``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import uvicorn
from fastapi import FastAPI

from tidemark.db import create_engine
from tidemark.db.migrate import upgrade
from tidemark.service import ServiceDefinition


def service_main(
    definition: ServiceDefinition[Any, Any],
    load_settings: Callable[[], Any],
    create_app: Callable[[Any], FastAPI],
    argv: list[str] | None = None,
    commands: Mapping[str, tuple[str, Callable[[Any], Coroutine[Any, Any, object]]]] | None = None,
) -> None:
    """``commands``: name → (help, coroutine function of the settings) run after migrating."""
    parser = argparse.ArgumentParser(prog=f"tidemark-{definition.name}-svc", description=definition.title)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API and run the service's consumers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    sub.add_parser("migrate", help="apply the database migrations and exit")
    for name, (help_text, _) in (commands or {}).items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command == "migrate" or getattr(args, "migrate", False):  # --migrate is a flag of serve only
        asyncio.run(_migrate(definition, settings))
    if args.command in (commands or {}):
        asyncio.run(_migrate(definition, settings))
        asyncio.run((commands or {})[args.command][1](settings))
    if args.command == "serve":
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)


async def _migrate(definition: ServiceDefinition[Any, Any], settings: Any) -> None:
    engine = create_engine(settings.database)
    try:
        await upgrade(engine, definition.migrations)
    finally:
        await engine.dispose()
