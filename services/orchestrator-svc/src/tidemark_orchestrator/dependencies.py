"""Pipeline dependencies: which pipelines a pipeline waits for, the checks on them (known, no
cycle, not deleted from under a downstream), the graph around a pipeline, and the edges' record
of upstream runs that :func:`tidemark_orchestrator.run_events.record_endings` acts on.

Edges live in ``pipeline_dependencies``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from tidemark.db import utcnow
from tidemark.errors import ConfigError, ConflictError
from tidemark_orchestrator.models import Dependency, Pipeline
from tidemark_orchestrator.schemas import Blocked, GraphNode, PipelineGraph, PipelineOut
from tidemark_orchestrator.validation import issue, listed, refuse_invalid

Edges = Mapping[uuid.UUID, Sequence[uuid.UUID]]  # pipeline → the pipelines it points at


async def resolve(session: AsyncSession, refs: Sequence[str]) -> list[Pipeline]:
    """Each reference (a pipeline id or name) → its pipeline; 422 at ``upstreams.N`` for each unknown."""
    pipelines = (await session.scalars(sa.select(Pipeline))).all()
    by_id = {str(p.id): p for p in pipelines}
    by_name = {p.name: p for p in pipelines}
    found: list[Pipeline] = []
    problems = []
    for i, ref in enumerate(refs):
        pipeline = by_id.get(_canonical_id(ref)) or by_name.get(ref)
        if pipeline is None:
            problems.append(issue(f"upstreams.{i}", f"upstream {ref!r} is not a pipeline id or name; pipelines: "
                                  f"{listed(sorted(by_name))}", "unknown_upstream"))
        elif pipeline not in found:  # the same upstream named twice (by id and name) is one edge
            found.append(pipeline)
    refuse_invalid(problems)
    return found


def _canonical_id(ref: str) -> str:
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ""


async def upstream_edges(session: AsyncSession) -> dict[uuid.UUID, list[uuid.UUID]]:
    edges: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (await session.scalars(sa.select(Dependency))).all():
        edges.setdefault(row.downstream_id, []).append(row.upstream_id)
    return edges


def find_cycle(edges: Edges, start: uuid.UUID) -> list[uuid.UUID] | None:
    """A path ``start → … → start`` following ``edges``, or None."""
    path: list[uuid.UUID] = [start]
    seen: set[uuid.UUID] = set()

    def walk(node: uuid.UUID) -> bool:
        for nxt in edges.get(node, ()):
            if nxt == start:
                path.append(nxt)
                return True
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            if walk(nxt):
                return True
            path.pop()
        return False

    return path if walk(start) else None


async def set_upstreams(session: AsyncSession, pipeline: Pipeline, refs: Sequence[str]) -> None:
    """Replace the pipeline's upstreams. 422 for an unknown one (``upstreams.N``) and for a cycle
    (``upstreams``, naming it). The caller holds the pipeline-changes lock, so two changes cannot
    each close half of a cycle."""
    upstreams = await resolve(session, refs)
    edges = await upstream_edges(session)
    edges[pipeline.id] = [u.id for u in upstreams]
    cycle = find_cycle(edges, pipeline.id)
    if cycle is not None:
        names = {p.id: p.name for p in upstreams} | {pipeline.id: pipeline.name}
        names |= {p.id: p.name for p in (await session.scalars(
            sa.select(Pipeline).where(Pipeline.id.in_(cycle)))).all()}
        # Edges point at upstreams; people read a chain in the order runs flow.
        shown = " → ".join(names[i] for i in reversed(cycle))
        kind = "depend on itself" if len(cycle) == 2 else "make a cycle"
        raise ConfigError(f"upstreams would {kind}: {shown}", errors=[
            issue("upstreams", f"a pipeline cannot wait for itself, directly or through others: {shown}", "cycle")])
    kept = {row.upstream_id: row for row in await _rows(session, downstream_id=pipeline.id)}
    wanted = {u.id for u in upstreams}
    for upstream_id, row in kept.items():
        if upstream_id not in wanted:
            await session.delete(row)
    for upstream_id in wanted - kept.keys():
        session.add(Dependency(downstream_id=pipeline.id, upstream_id=upstream_id, satisfied=False))
    if wanted != kept.keys():
        pipeline.updated_at = utcnow()
    await session.flush()


async def _rows(session: AsyncSession, *, downstream_id: uuid.UUID | None = None,
                upstream_id: uuid.UUID | None = None) -> Sequence[Dependency]:
    query = sa.select(Dependency)
    if downstream_id is not None:
        query = query.where(Dependency.downstream_id == downstream_id)
    if upstream_id is not None:
        query = query.where(Dependency.upstream_id == upstream_id)
    return (await session.scalars(query)).all()


async def refuse_delete_with_downstreams(session: AsyncSession, pipeline: Pipeline) -> None:
    """409 naming the pipelines that would lose an upstream."""
    query = (sa.select(Pipeline.name).join(Dependency, Dependency.downstream_id == Pipeline.id)
             .where(Dependency.upstream_id == pipeline.id).order_by(Pipeline.name))
    names = list((await session.scalars(query)).all())
    if names:
        raise ConflictError(
            f"pipeline {pipeline.name!r} is an upstream of {listed(names)}; remove it from their upstreams "
            f"first (tidemark pipelines update NAME --no-upstreams, or --upstream for the ones to keep)",
            downstreams=names)


async def describe(session: AsyncSession, pipelines: Iterable[Pipeline]) -> list[PipelineOut]:
    """Pipelines as the API shows them: with their upstreams and what blocks them."""
    items = list(pipelines)
    ids = [p.id for p in items]
    rows = (await session.scalars(sa.select(Dependency).where(Dependency.downstream_id.in_(ids)))).all()
    names = await _names(session)
    ups: dict[uuid.UUID, list[Dependency]] = {}
    for row in rows:
        ups.setdefault(row.downstream_id, []).append(row)
    out = []
    for p in items:
        edges = sorted(ups.get(p.id, []), key=lambda r: names.get(r.upstream_id, ""))
        blocked = [Blocked(upstream_id=r.upstream_id, upstream_name=names.get(r.upstream_id, "?"),
                           run_id=r.last_run_id, status=r.last_status, finished_at=r.last_finished_at)
                   for r in edges if blocks(r)]
        out.append(PipelineOut.model_validate(p).model_copy(
            update={"upstreams": [r.upstream_id for r in edges], "blocked_by": blocked}))
    return out


async def _names(session: AsyncSession) -> dict[uuid.UUID, str]:
    return {row.id: row.name for row in (await session.execute(sa.select(Pipeline.id, Pipeline.name))).all()}


def blocks(row: Dependency) -> bool:
    """The upstream's latest run ended without succeeding: the downstream waits until it does."""
    return row.last_run_id is not None and row.last_status != "succeeded"


async def graph(session: AsyncSession, pipeline: Pipeline) -> PipelineGraph:
    """The pipelines ``pipeline`` waits for and those waiting for it, to any depth, as two trees
    (a pipeline reached two ways appears under each)."""
    names = await _names(session)
    up: dict[uuid.UUID, list[uuid.UUID]] = {}
    down: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (await session.scalars(sa.select(Dependency))).all():
        up.setdefault(row.downstream_id, []).append(row.upstream_id)
        down.setdefault(row.upstream_id, []).append(row.downstream_id)

    def tree(edges: Edges, node: uuid.UUID, depth: int) -> list[GraphNode]:
        # Cycles are refused when edges are saved; the depth bound guards a database edited by hand.
        if depth > len(names):
            return []
        children = sorted(edges.get(node, ()), key=lambda i: names[i])
        return [GraphNode(id=c, name=names[c], depth=depth, children=tree(edges, c, depth + 1)) for c in children]

    return PipelineGraph(id=pipeline.id, name=pipeline.name, upstreams=tree(up, pipeline.id, 1),
                         downstreams=tree(down, pipeline.id, 1))


# --- the event side: what a run's end does to the edges it feeds --------------------------------------


async def lock_pipelines(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """Row locks on these pipelines until the transaction ends, taken in one order (no deadlock):
    two replicas, or two upstreams ending at once, then decide about a downstream one after the
    other, each seeing what the other committed. SQLite serialises writers by itself."""
    wanted = sorted(set(ids))
    if wanted:
        query = sa.select(Pipeline.id).where(Pipeline.id.in_(wanted)).order_by(Pipeline.id).with_for_update()
        await session.execute(query)


async def has_edges(session: AsyncSession, pipeline_id: uuid.UUID) -> bool:
    """Whether the pipeline has an upstream or a downstream (most have neither: one probe)."""
    query = (sa.select(Dependency.downstream_id)
             .where(sa.or_(Dependency.upstream_id == pipeline_id, Dependency.downstream_id == pipeline_id)).limit(1))
    return (await session.scalars(query)).first() is not None


async def with_edges(session: AsyncSession, pipeline_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Those of the pipelines that have an upstream or a downstream (most have neither), in one query."""
    ids = set(pipeline_ids)
    if not ids:
        return set()
    up = sa.select(Dependency.upstream_id).where(Dependency.upstream_id.in_(ids))
    down = sa.select(Dependency.downstream_id).where(Dependency.downstream_id.in_(ids))
    return set((await session.scalars(sa.union(up, down))).all())


async def downstream_ids(session: AsyncSession, upstream_id: uuid.UUID) -> list[uuid.UUID]:
    query = sa.select(Dependency.downstream_id).where(Dependency.upstream_id == upstream_id)
    return sorted((await session.scalars(query)).all())


async def record_upstream_end(session: AsyncSession, upstream_id: uuid.UUID, run_id: uuid.UUID, status: str,
                              finished_at: datetime | None) -> None:
    """Each edge out of ``upstream_id`` takes the run's end into account once: a success satisfies
    it, any other ending blocks it. Idempotent: an edge that already saw ``run_id`` is left alone,
    so a repeated ``run.finished`` (redelivered, or from another replica) changes nothing."""
    query = (sa.select(Dependency).where(Dependency.upstream_id == upstream_id)
             .execution_options(populate_existing=True))
    for row in (await session.scalars(query)).all():
        if row.last_run_id == run_id:
            continue
        row.last_run_id = run_id
        row.last_status = status
        row.last_finished_at = finished_at
        row.satisfied = status == "succeeded"
    await session.flush()


async def all_upstreams_satisfied(session: AsyncSession, downstream_id: uuid.UUID) -> bool:
    query = (sa.select(Dependency).where(Dependency.downstream_id == downstream_id)
             .execution_options(populate_existing=True))
    rows = (await session.scalars(query)).all()
    return bool(rows) and all(r.satisfied for r in rows)


async def consume(session: AsyncSession, downstream_id: uuid.UUID) -> None:
    """A run of the downstream was requested: upstream successes before it count for it only."""
    await session.execute(sa.update(Dependency).where(Dependency.downstream_id == downstream_id)
                          .values(satisfied=False).execution_options(synchronize_session="fetch"))
