"""The per-stream options of ``pipelines create`` and ``pipelines update``, and how they build the
``streams`` list of the pipeline API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
MODES = ["full_refresh", "incremental", "incremental_append"]


def _names(text: str | None) -> list[str] | None:
    """``a, b`` → ``["a", "b"]``; ``""`` → ``[]``; not given → None."""
    if text is None:
        return None
    return [k.strip() for k in text.split(",") if k.strip()]


def parse_partition(items: tuple[str, ...]) -> list[dict[str, str]] | None:
    """``--partition updated_at:day --partition id:bucket[16]`` → partition fields (identity by default)."""
    if not items:
        return None
    out = []
    for item in items:
        column, _, transform = item.partition(":")
        if not column:
            raise click.BadParameter(f"{item!r}: expected COLUMN[:TRANSFORM]", param_hint="--partition")
        out.append({"column": column, "transform": transform or "identity"})
    return out


def read_streams_file(path: Path | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--streams-file") from exc
    if not isinstance(data, list) or not all(isinstance(s, dict) and "name" in s for s in data):
        raise click.BadParameter("expected a JSON list of stream objects, each with a name",
                                 param_hint="--streams-file")
    return data


@dataclass(frozen=True)
class StreamOptions:
    """What the options say about every stream; None means "not given"."""

    mode: str | None = None
    cursor_field: str | None = None
    primary_key: list[str] | None = None
    columns: list[str] | None = None
    lookback: int | None = None
    partition: list[dict[str, str]] | None = None
    unpartitioned: bool = False

    @classmethod
    def from_cli(cls, mode: str | None, cursor_field: str | None, primary_key: str | None, columns: str | None,
                 lookback: int | None, partition: tuple[str, ...], unpartitioned: bool = False) -> StreamOptions:
        if partition and unpartitioned:
            raise click.UsageError("--partition and --no-partition exclude each other")
        return cls(mode, cursor_field, _names(primary_key), _names(columns), lookback, parse_partition(partition),
                   unpartitioned)

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.mode, self.cursor_field, self.primary_key, self.columns,
                                           self.lookback, self.partition)) or self.unpartitioned

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        out = dict(spec)
        if self.mode is not None:
            out["sync_mode"] = self.mode
        if self.cursor_field is not None:
            out["cursor_field"] = self.cursor_field or None
        if self.primary_key is not None:
            out["primary_key"] = self.primary_key
        if self.columns is not None:
            out["columns"] = self.columns or None  # "" means every column again
        if self.lookback is not None:
            out["lookback"] = self.lookback
        if self.partition is not None:
            out["partition"] = self.partition
        if self.unpartitioned:
            out["partition"] = []
        return out


def build_streams(current: list[dict[str, Any]], names: tuple[str, ...], from_file: list[dict[str, Any]] | None,
                  options: StreamOptions) -> list[dict[str, Any]]:
    """The stream list: from ``--streams-file``, else the ``--stream`` names, else the current streams.
    A named stream that was in the pipeline keeps its settings; the options then apply to every stream."""
    if from_file is not None:
        base = from_file
    else:
        by_name = {s["name"]: s for s in current}
        base = [by_name.get(name, {"name": name}) for name in names] if names else list(current)
    return [options.apply(spec) for spec in base]


def stream_options(*, for_update: bool) -> Callable[[F], F]:
    """The options shared by create and update; update has no defaults (absent means unchanged)."""
    scope = "every stream of the list" if for_update else "every stream"

    def decorate(fn: F) -> F:
        options = [
            click.option("--stream", "streams", multiple=True,
                         help="Stream name (repeatable)." if not for_update else
                         "Replace the stream list with these streams (repeatable); one that was in the "
                         "pipeline keeps its settings."),
            click.option("--streams-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="The stream list as a JSON file: a list of stream objects as the API takes them "
                              "(name, sync_mode, cursor_field, primary_key, columns, lookback, partition)."),
            click.option("--mode", type=click.Choice(MODES),
                         help=f"Sync mode of {scope}" + ("." if for_update else " (default: full_refresh).")),
            click.option("--cursor-field", help=f"Cursor column of {scope} (incremental modes; \"\" clears it)."),
            click.option("--primary-key",
                         help=f"Comma-separated key columns of {scope} (incremental merge; \"\" clears them)."),
            click.option("--columns", "columns",
                         help=f"Comma-separated columns to load for {scope} (\"\" means all)."),
            click.option("--lookback", type=click.IntRange(0),
                         help=f"Incremental: re-read this far behind the last cursor, for {scope} "
                              "(seconds for time cursors, cursor units for numbers)."),
            click.option("--partition", "partition", multiple=True, metavar="COLUMN[:TRANSFORM]",
                         help=f"Partition field of {scope} (repeatable, in order): transform identity (default), "
                              "year, month, day, hour, bucket[N] or truncate[W]."),
        ]
        if for_update:
            options.append(click.option("--no-partition", "unpartitioned", is_flag=True,
                                        help="Unpartitioned from now on."))
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate
