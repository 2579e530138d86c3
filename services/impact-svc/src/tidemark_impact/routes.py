"""/v1/downstreams (the registry impact analysis walks) and /v1/alerts (history)."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError

from tidemark.api.openapi import problem_responses
from tidemark.errors import ConflictError, NotFoundError
from tidemark.ids import new_id
from tidemark_impact.deps import Runtime
from tidemark_impact.models import Alert, Downstream
from tidemark_impact.schemas import AlertOut, DownstreamCreate, DownstreamOut

downstreams = APIRouter(prefix="/v1/downstreams", tags=["impact"])
alerts = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@downstreams.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def register(body: DownstreamCreate, rt: Runtime) -> DownstreamOut:
    async with rt.transaction() as session:
        row = Downstream(id=new_id(), **body.model_dump())
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ConflictError(f"a downstream named {body.name!r} already exists", field="name") from exc
        return DownstreamOut.model_validate(row)


@downstreams.get("")
async def list_downstreams(
    rt: Runtime, table: Annotated[str | None, Query(description="Only those reading this table.")] = None
) -> list[DownstreamOut]:
    query = sa.select(Downstream).order_by(Downstream.name)
    if table:
        query = query.where(Downstream.table == table)
    async with rt.sessions() as session:
        return [DownstreamOut.model_validate(r) for r in (await session.scalars(query)).all()]


@downstreams.delete("/{downstream_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unregister(downstream_id: uuid.UUID, rt: Runtime) -> Response:
    async with rt.transaction() as session:
        row = await session.get(Downstream, downstream_id)
        if row is None:
            raise NotFoundError(f"downstream {downstream_id} does not exist")
        await session.delete(row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@alerts.get("")
async def list_alerts(
    rt: Runtime,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    query = sa.select(Alert).order_by(Alert.created_at.desc()).limit(limit)
    if subject_id:
        query = query.where(Alert.subject_id == subject_id)
    async with rt.sessions() as session:
        return [AlertOut.model_validate(r) for r in (await session.scalars(query)).all()]
