"""``tidemark tokens ...``: API tokens, through /v1/tokens (an admin token is needed)."""

from __future__ import annotations

from typing import Any

import click

from tidemark_cli.context import Ctx, confirm, pass_ctx
from tidemark_cli.output import emit, emit_json, times

COLUMNS = ["name", "scope", "source", "id", "created_at", "revoked_at"]
SCOPES = ("read", "write", "admin")


@click.group()
def tokens() -> None:
    """API tokens: `read` views, `write` also changes, `admin` also manages tokens and alert rules."""


@tokens.command("list")
@pass_ctx
def tokens_list(ctx: Ctx) -> None:
    """Every token by name and scope (configured ones have no id); never a token's value."""
    with ctx.client() as client:
        found = client.get("/v1/tokens")
    emit(found if ctx.as_json else [times(t) for t in found], ctx.as_json, COLUMNS)


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses the token; unique among active tokens.")
@click.option("--scope", type=click.Choice(SCOPES), required=True)
@pass_ctx
def tokens_create(ctx: Ctx, name: str, scope: str) -> None:
    """Create a token and print it: this is the only time it is shown."""
    with ctx.client() as client:
        created = client.post("/v1/tokens", json={"name": name, "scope": scope})
    if ctx.as_json:
        emit_json(created)
        return
    click.echo(created["token"])
    click.echo(f"Token {created['name']} ({created['scope']}, id {created['id']}): store it now, it is not shown "
               "again.", err=True)


@tokens.command("revoke")
@click.argument("id_or_name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_ctx
def tokens_revoke(ctx: Ctx, id_or_name: str, yes: bool) -> None:
    """Revoke a token the API issued (by id, or by the name of an active one); every service refuses it
    within seconds. Configured tokens are removed from the settings or the tokens Secret instead."""
    with ctx.client() as client:
        found = _find(client.get("/v1/tokens"), id_or_name)
        confirm(yes, f"Revoke token {found['name']} ({found['scope']}, {found['id']})?")
        client.delete(f"/v1/tokens/{found['id']}")
    if ctx.as_json:
        emit_json({"id": found["id"], "name": found["name"], "revoked": True})
    else:
        click.echo(f"Revoked token {found['name']}.")


def _find(listed: list[dict[str, Any]], id_or_name: str) -> dict[str, Any]:
    issued = [t for t in listed if t["source"] == "api"]
    for token in issued:
        if token["id"] == id_or_name or (token["name"] == id_or_name and token["revoked_at"] is None):
            return token
    if any(t["name"] == id_or_name for t in listed if t["source"] == "config"):
        raise click.ClickException(f"{id_or_name} is a configured token: remove it from the settings or the "
                                   "tokens Secret.")
    raise click.ClickException(f"No active token {id_or_name}.")
