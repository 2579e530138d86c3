"""``tidemark pipelines ...``: everything /v1/pipelines does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tidemark_cli.client import Client
from tidemark_cli.context import Ctx, delete_named, pass_ctx
from tidemark_cli.output import emit, emit_json, record, table, when
from tidemark_cli.streams import StreamOptions, build_streams, read_streams_file, stream_options
from tidemark_cli.views import run_exit_code, show_run

COLUMNS = ["id", "name", "status", "schedule", "streams"]
UPSTREAM_HELP = ("A pipeline (name or id) this one waits for (repeatable): once every upstream has succeeded "
                 "since this pipeline's last run, it runs (trigger `dependency`).")
F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def pipelines() -> None:
    """Pipelines: which streams of a connection load where, and how."""


def _flat(pipeline: dict[str, Any]) -> dict[str, Any]:
    return {**pipeline, "streams": [s["name"] for s in pipeline["streams"]], "schedule": _schedule(pipeline)}


def _schedule(pipeline: dict[str, Any]) -> str | None:
    found = pipeline.get("schedule")
    return f"{found['cron']} ({found['timezone']})" if found else None


def _retries(policy: dict[str, Any] | None) -> str:
    if not policy:
        return "default"
    if policy["max_attempts"] <= 1:
        return "none (1 attempt)"
    return (f"{policy['max_attempts']} attempts, backoff from {policy['initial_delay_seconds']:g}s "
            f"up to {policy['max_delay_seconds']:g}s")


def schedule_options(for_update: bool) -> Callable[[F], F]:
    """--schedule, --timezone and --catchup (and --no-schedule on update)."""

    def add(command: F) -> F:
        options = [
            click.option("--schedule", help="Cron expression: 5 fields, or 6 with seconds last (e.g. '0 2 * * *')."),
            click.option("--timezone", help="IANA time zone the schedule is read in (default UTC)"
                         + ("; alone, it moves the current schedule to this zone." if for_update else ".")),
            click.option("--catchup", type=click.Choice(["last", "all", "none"]),
                         help="Ticks missed while down or paused: run the latest (default), each, or none."),
        ]
        if for_update:
            options.append(click.option("--no-schedule", is_flag=True, help="Remove the schedule: manual runs only."))
        for option in reversed(options):
            command = option(command)
        return command

    return add


def policy_options(for_update: bool) -> Callable[[F], F]:
    """--timeout-seconds, --overlap and the retry policy (and --no-timeout on update)."""

    def add(command: F) -> F:
        options = [
            click.option("--timeout-seconds", type=click.IntRange(min=1),
                         help="Longest a run may run; over it the run is stopped and fails (retries apply)."),
            click.option("--overlap", type=click.Choice(["queue", "skip", "cancel_previous"]),
                         help="A new run while one is active: wait for it (default), refuse it, or cancel it."),
            click.option("--max-attempts", type=click.IntRange(min=1, max=20),
                         help="Attempts in all for a failed run, the first included (default 3; 1: no retries)."),
            click.option("--retry-delay", type=click.FloatRange(min=0),
                         help="Seconds before the first retry (default 30); doubles each time, with jitter."),
            click.option("--retry-max-delay", type=click.FloatRange(min=0),
                         help="Longest backoff between attempts, in seconds (default 900)."),
        ]
        if for_update:
            options.append(click.option("--no-timeout", is_flag=True, help="Remove the timeout."))
        for option in reversed(options):
            command = option(command)
        return command

    return add


def policy_body(current: dict[str, Any] | None, timeout_seconds: int | None, overlap: str | None,
                max_attempts: int | None, retry_delay: float | None, retry_max_delay: float | None) -> dict[str, Any]:
    """The body fields the policy options give; retry options change the current policy's fields."""
    body: dict[str, Any] = {}
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    if overlap is not None:
        body["overlap"] = overlap
    retries = {k: v for k, v in (("max_attempts", max_attempts), ("initial_delay_seconds", retry_delay),
                                 ("max_delay_seconds", retry_max_delay)) if v is not None}
    if retries:
        body["retries"] = {**(current or {}), **retries}
    return body


@pipelines.command("create")
@click.option("--name", required=True)
@click.option("--connection", required=True, help="Connection id or name.")
@stream_options(for_update=False)
@click.option("--namespace", default="tidemark", show_default=True, help="Iceberg namespace.")
@click.option("--table-prefix", default="", help="Prefix added to every table name.")
@click.option("--format", "kind", type=click.Choice(["iceberg", "parquet"]), default="iceberg",
              show_default=True)
@schedule_options(for_update=False)
@policy_options(for_update=False)
@click.option("--upstream", "upstreams", multiple=True, metavar="PIPELINE", help=UPSTREAM_HELP)
@click.option("--no-validate", is_flag=True,
              help="Save without checking the streams against the source's catalog (when it cannot be reached).")
@pass_ctx
def pipelines_create(ctx: Ctx, name: str, connection: str, streams: tuple[str, ...], streams_file: Path | None,
                     mode: str | None, cursor_field: str | None, primary_key: str | None, columns: str | None,
                     lookback: int | None, partition: tuple[str, ...], namespace: str, table_prefix: str,
                     kind: str, schedule: str | None, timezone: str | None, catchup: str | None,
                     timeout_seconds: int | None, overlap: str | None, max_attempts: int | None,
                     retry_delay: float | None, retry_max_delay: float | None,
                     upstreams: tuple[str, ...], no_validate: bool) -> None:
    """Create a pipeline of the --stream names (or --streams-file); the stream options apply to each."""
    if timezone is not None and schedule is None:
        raise click.UsageError("--timezone needs --schedule")
    from_file = read_streams_file(streams_file)
    if not streams and from_file is None:
        raise click.UsageError("give the streams: --stream NAME (repeatable) or --streams-file FILE")
    if streams and from_file is not None:
        raise click.UsageError("--stream and --streams-file exclude each other")
    options = StreamOptions.from_cli(mode, cursor_field, primary_key, columns, lookback, partition)
    with ctx.client() as client:
        conn = client.resolve("connections", connection)
        body: dict[str, Any] = {
            "name": name,
            "connection_id": conn["id"],
            "streams": build_streams([], streams, from_file, options),
            "destination": {"kind": kind, "namespace": namespace, "table_prefix": table_prefix},
            "schedule": {"cron": schedule, "timezone": timezone or "UTC"} if schedule is not None else None,
            "upstreams": list(upstreams),
        }
        if catchup is not None:
            body["catchup"] = catchup
        body.update(policy_body(None, timeout_seconds, overlap, max_attempts, retry_delay, retry_max_delay))
        created = client.post("/v1/pipelines", json=body, params=_validate(no_validate))
    emit(created if ctx.as_json else _flat(created), ctx.as_json, COLUMNS)


@pipelines.command("list")
@pass_ctx
def pipelines_list(ctx: Ctx) -> None:
    """Every pipeline with its status, schedule and streams."""
    with ctx.client() as client:
        data = client.get("/v1/pipelines")
    emit(data if ctx.as_json else [_flat(p) for p in data], ctx.as_json, COLUMNS)


@pipelines.command("show")
@click.argument("pipeline")
@pass_ctx
def pipelines_show(ctx: Ctx, pipeline: str) -> None:
    """One pipeline: connection, destination, schedule, status and its streams."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        if ctx.as_json:
            emit_json(found)
            return
        names = {p["id"]: p["name"] for p in client.get("/v1/pipelines")} if found["upstreams"] else {}
    dest = found["destination"]
    click.echo(record([
        ("id", found["id"]), ("name", found["name"]), ("status", found["status"]),
        ("connection", found["connection_id"]), ("schedule", _schedule(found) or "manual only"),
        ("catchup", found["catchup"]), ("overlap", found.get("overlap", "queue")),
        ("retries", _retries(found.get("retries"))),
        ("timeout", f"{found['timeout_seconds']}s" if found.get("timeout_seconds") else "none"),
        ("destination", f"{dest['kind']} {dest['namespace']}"
                        + (f" (table prefix {dest['table_prefix']})" if dest.get("table_prefix") else "")),
        ("upstreams", ", ".join(names.get(i, i) for i in found["upstreams"]) or "none"),
        ("blocked by", "; ".join(f"{b['upstream_name']} (run {b['run_id']} {b['status']})"
                                 for b in found["blocked_by"]) or "nothing"),
        ("created", when(found["created_at"])), ("updated", when(found["updated_at"])),
    ]))
    click.echo("\nStreams")
    rows = [{**s, "partition": [f"{p['transform']}({p['column']})" for p in s.get("partition") or []] or None}
            for s in found["streams"]]
    click.echo(table(rows, ["name", "sync_mode", "cursor_field", "primary_key", "lookback", "columns", "partition"]))


@pipelines.command("update")
@click.argument("pipeline")
@stream_options(for_update=True)
@click.option("--namespace", help="Iceberg namespace.")
@click.option("--table-prefix", help="Prefix added to every table name.")
@click.option("--format", "kind", type=click.Choice(["iceberg", "parquet"]), help="Table format.")
@schedule_options(for_update=True)
@policy_options(for_update=True)
@click.option("--upstream", "upstreams", multiple=True, metavar="PIPELINE",
              help=UPSTREAM_HELP + " The list given replaces the current one.")
@click.option("--no-upstreams", is_flag=True, help="Remove every upstream: the pipeline waits for none.")
@click.option("--no-validate", is_flag=True,
              help="Save without checking the streams against the source's catalog (when it cannot be reached).")
@pass_ctx
def pipelines_update(ctx: Ctx, pipeline: str, streams: tuple[str, ...], streams_file: Path | None,
                     mode: str | None, cursor_field: str | None, primary_key: str | None, columns: str | None,
                     lookback: int | None, partition: tuple[str, ...], unpartitioned: bool, namespace: str | None,
                     table_prefix: str | None, kind: str | None, schedule: str | None, timezone: str | None,
                     catchup: str | None, no_schedule: bool, timeout_seconds: int | None, overlap: str | None,
                     max_attempts: int | None, retry_delay: float | None, retry_max_delay: float | None,
                     no_timeout: bool, upstreams: tuple[str, ...], no_upstreams: bool, no_validate: bool) -> None:
    """Change a pipeline: only what the options name changes. The stream options apply to every stream
    of the new list (--stream or --streams-file), else of the current one."""
    if (schedule is not None or timezone is not None) and no_schedule:
        raise click.UsageError("--schedule/--timezone and --no-schedule exclude each other")
    if streams and streams_file is not None:
        raise click.UsageError("--stream and --streams-file exclude each other")
    if upstreams and no_upstreams:
        raise click.UsageError("--upstream and --no-upstreams exclude each other")
    if timeout_seconds is not None and no_timeout:
        raise click.UsageError("--timeout-seconds and --no-timeout exclude each other")
    from_file = read_streams_file(streams_file)
    options = StreamOptions.from_cli(mode, cursor_field, primary_key, columns, lookback, partition, unpartitioned)
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        body: dict[str, Any] = {}
        if streams or from_file is not None or options.given:
            body["streams"] = build_streams(found["streams"], streams, from_file, options)
        destination = {k: v for k, v in (("namespace", namespace), ("table_prefix", table_prefix),
                                         ("kind", kind)) if v is not None}
        if destination:
            body["destination"] = {**found["destination"], **destination}
        if no_schedule:
            body["schedule"] = None
        elif schedule is not None or timezone is not None:
            current = found.get("schedule") or {}
            if schedule is None and not current:
                raise click.UsageError("the pipeline has no schedule: give --schedule with --timezone")
            body["schedule"] = {"cron": schedule or current["cron"],
                                "timezone": timezone or current.get("timezone", "UTC")}
        if catchup is not None:
            body["catchup"] = catchup
        if upstreams or no_upstreams:
            body["upstreams"] = list(upstreams)
        body.update(policy_body(found.get("retries"), timeout_seconds, overlap, max_attempts, retry_delay,
                                retry_max_delay))
        if no_timeout:
            body["timeout_seconds"] = None
        if not body:
            raise click.UsageError("nothing to change: give a stream, destination, schedule, policy or upstream "
                                   "option (see --help)")
        _patch_and_emit(ctx, client, found, body, _validate(no_validate))


def _validate(no_validate: bool) -> dict[str, str] | None:
    return {"validate": "false"} if no_validate else None


def _patch_and_emit(ctx: Ctx, client: Client, found: dict[str, Any], body: dict[str, Any],
                    params: dict[str, str] | None = None) -> None:
    changed = client.patch(f"/v1/pipelines/{found['id']}", json=body, params=params)
    emit(changed if ctx.as_json else _flat(changed), ctx.as_json, COLUMNS)


@pipelines.command("graph")
@click.argument("pipeline")
@pass_ctx
def pipelines_graph(ctx: Ctx, pipeline: str) -> None:
    """The pipelines PIPELINE waits for (upstreams) and those waiting for it (downstreams), to any depth."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        graph = client.get(f"/v1/pipelines/{found['id']}/graph")
    if ctx.as_json:
        emit_json(graph)
        return
    click.echo(graph_text(graph))


def graph_text(graph: dict[str, Any]) -> str:
    """Two trees under the pipeline's name: what it waits for, and what waits for it."""
    lines = [graph["name"]]
    for label, nodes, last in (("upstreams (run before it)", graph["upstreams"], False),
                               ("downstreams (run after it)", graph["downstreams"], True)):
        lines.append(("└── " if last else "├── ") + label)
        lines += _tree(nodes, "    " if last else "│   ") if nodes else [("    " if last else "│   ") + "(none)"]
    return "\n".join(lines)


def _tree(nodes: list[dict[str, Any]], prefix: str) -> list[str]:
    lines: list[str] = []
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{node['name']}")
        lines += _tree(node["children"], prefix + ("    " if last else "│   "))
    return lines


@pipelines.command("pause")
@click.argument("pipeline")
@pass_ctx
def pipelines_pause(ctx: Ctx, pipeline: str) -> None:
    """Pause a pipeline: no scheduled, dependency or manual runs until it is resumed. Its upcoming
    runs are withdrawn, runs still waiting for a slot or a retry's backoff are cancelled; a run
    already sent to the workers goes on."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        answer = client.post(f"/v1/pipelines/{found['id']}/pause")
    if ctx.as_json:
        emit_json(answer)
        return
    emit(_flat(answer["pipeline"]), False, COLUMNS)
    click.echo(f"\n{len(answer['unscheduled'])} upcoming run(s) withdrawn.")
    for run in answer.get("cancelled", []):
        click.echo(f"Run {run['run_id']} ({run['trigger']}, attempt {run['attempt']}) was waiting: cancelled.")
    if answer["active_run"]:
        active = answer["active_run"]
        click.echo(f"Run {active['run_id']} is {active['status']} and goes on (pausing does not stop it).")


@pipelines.command("resume")
@click.argument("pipeline")
@pass_ctx
def pipelines_resume(ctx: Ctx, pipeline: str) -> None:
    """Resume a paused pipeline; ticks missed while paused follow its catchup (last: at most one run)."""
    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        answer = client.post(f"/v1/pipelines/{found['id']}/resume")
    if ctx.as_json:
        emit_json(answer)
        return
    emit(_flat(answer["pipeline"]), False, COLUMNS)
    for run in answer["queued"]:
        click.echo(f"\nMissed tick {when(run['scheduled_for'])}: run {run['run_id']} queued.")
    if answer["waiting"]:
        click.echo(f"{len(answer['waiting'])} more missed tick(s) wait their turn.")
    click.echo(f"{answer['upcoming']} upcoming run(s) scheduled.")


@pipelines.command("delete")
@click.argument("pipeline")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def pipelines_delete(ctx: Ctx, pipeline: str, yes: bool) -> None:
    """Delete a pipeline (its tables and their data stay in the lakehouse)."""
    delete_named(ctx, "pipelines", pipeline, yes)


@pipelines.command("run")
@click.argument("pipeline")
@click.option("--wait/--no-wait", default=False,
              help="Wait until the run finishes and show its result. Exit status: 0 succeeded, "
                   "1 failed or cancelled, 3 partially succeeded (some streams committed, some failed).")
@click.option("--timeout", default=3600, show_default=True, type=click.IntRange(1),
              help="With --wait: give up waiting after this many seconds (the run goes on; exit 1).")
@click.option("--resync", multiple=True, metavar="STREAM",
              help="Reset this stream's state: read it in full and rewrite its table (repeatable).")
@pass_ctx
def pipelines_run(ctx: Ctx, pipeline: str, wait: bool, timeout: int, resync: tuple[str, ...]) -> None:
    """Trigger a run now."""
    from tidemark_cli.demo import wait_for_run

    with ctx.client() as client:
        found = client.resolve("pipelines", pipeline)
        run = client.post(f"/v1/pipelines/{found['id']}/runs", json={"resync": list(resync)})
        if not wait:
            emit(run, ctx.as_json, ["run_id", "status", "trigger"])
            return
        try:
            run = wait_for_run(client, run["run_id"], timeout=timeout)
        except TimeoutError as exc:
            raise click.ClickException(f"{exc}; follow it with: tidemark runs show {run['run_id']}") from exc
    if ctx.as_json:
        emit_json(run)
    else:
        click.echo(show_run(run))
    code = run_exit_code(run["status"])
    if code:
        raise SystemExit(code)
