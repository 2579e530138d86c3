"""What every command shares: where the API is, the token, JSON or tables, and config parsing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tidemark_cli.client import ApiError, Client
from tidemark_cli.output import emit_json


class Ctx:
    def __init__(self, url: str, token: str | None, as_json: bool) -> None:
        self.url = url
        self.token = token
        self.as_json = as_json

    @contextlib.contextmanager
    def client(self, timeout: float = 30.0) -> Iterator[Client]:
        client = Client(self.url, self.token, timeout=timeout)
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


def parse_config(config: str | None, config_file: Path | None, sets: tuple[str, ...]) -> dict[str, Any]:
    """``--config-file``, then ``--config`` JSON, then each ``--set KEY=VALUE`` (values parsed as JSON when
    they are JSON, so ``port=5432`` is a number and ``name=shop`` a string)."""
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


def confirm(yes: bool, question: str) -> None:
    """Ask before destroying something, unless ``--yes`` was given."""
    if not yes:
        click.confirm(question, abort=True)


def delete_named(ctx: Ctx, collection: str, id_or_name: str, yes: bool) -> None:
    """Delete one item of ``collection`` (``connections``, ``pipelines``) by id or name, asking first."""
    kind = collection.removesuffix("s")
    with ctx.client() as client:
        found = client.resolve(collection, id_or_name)
        confirm(yes, f"Delete {kind} {found['name']} ({found['id']})?")
        client.delete(f"/v1/{collection}/{found['id']}")
    if ctx.as_json:
        emit_json({"id": found["id"], "name": found["name"], "deleted": True})
    else:
        click.echo(f"Deleted {kind} {found['name']}.")
