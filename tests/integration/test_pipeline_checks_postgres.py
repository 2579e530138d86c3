"""The issue's case on a real PostgreSQL: `public.y` and `sales.y` in one pipeline are checked
against the discovered catalog, accepted, and load into two tables that each keep their rows;
a jsonb cursor is refused when the pipeline is saved, and fails its stream as a config error
when the pipeline was saved unchecked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.pipelines import Pipelines
from tidemark.connectors.sql.postgres import PostgresConfig, PostgresSource
from tidemark.events import DestinationSpec, StreamSpec
from tidemark.lakehouse import Lakehouse, table_identifier
from tidemark_ingest.worker.load import Progress, load_stream
from tidemark_testing.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

SCHEMA_SQL = """
CREATE SCHEMA sales;
CREATE TABLE public.y (id int PRIMARY KEY, doc jsonb, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE sales.y (id int PRIMARY KEY, doc jsonb, updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO public.y (id, doc) SELECT i, '{}' FROM generate_series(1, 3) i;
INSERT INTO sales.y (id, doc) SELECT i, '{}' FROM generate_series(101, 105) i;
"""


@pytest.fixture(scope="module")
def source_config(pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    url = create_database(pg_admin_dsn, "tidemark_checks")
    parsed = make_url(url)
    with psycopg.connect(f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} "
                         f"dbname={parsed.database}", autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    yield {"host": parsed.host, "port": parsed.port or 5432, "database": parsed.database,
           "user": parsed.username, "password": parsed.password or "", "tls_mode": "disable"}
    drop_database(pg_admin_dsn, url)


async def test_same_name_in_two_schemas_is_checked_accepted_and_loaded_apart(
    pipelines: Pipelines, source_config: dict[str, Any], lake: Lakehouse
) -> None:
    created = await pipelines.connector.post(
        "/v1/connections", json={"name": "pg", "type": "postgres", "config": source_config})
    assert created.status_code == 201, created.text
    body = {"name": "two-ys", "connection_id": created.json()["id"],
            "streams": [{"name": "public.y"}, {"name": "sales.y"}], "destination": {"namespace": "checked"}}
    pipeline = await pipelines.orchestrator.post("/v1/pipelines", json=body)
    assert pipeline.status_code == 201, pipeline.text

    source = PostgresSource(PostgresConfig.model_validate(source_config))
    destination = DestinationSpec.model_validate(pipeline.json()["destination"])
    try:
        for spec in pipeline.json()["streams"]:
            stats = load_stream(lake, source, destination, StreamSpec.model_validate(spec), "run-1", Progress())
            assert stats.status == "succeeded", stats.error
    finally:
        source.close()
    ids = {name: sorted(lake.catalog.load_table(table_identifier(destination, name)).scan().to_arrow()
                        .column("id").to_pylist()) for name in ("public.y", "sales.y")}
    assert ids == {"public.y": [1, 2, 3], "sales.y": [101, 102, 103, 104, 105]}


async def test_a_jsonb_cursor_is_refused_then_fails_the_stream_when_unchecked(
    pipelines: Pipelines, source_config: dict[str, Any], lake: Lakehouse
) -> None:
    created = await pipelines.connector.post(
        "/v1/connections", json={"name": "pg", "type": "postgres", "config": source_config})
    stream = {"name": "sales.y", "sync_mode": "incremental", "primary_key": ["id"], "cursor_field": "doc"}
    body = {"name": "json-cursor", "connection_id": created.json()["id"], "streams": [stream]}
    refused = await pipelines.orchestrator.post("/v1/pipelines", json=body)
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "streams.0.cursor_field"
    assert error["type"] == "unusable_cursor"
    assert "usable cursors: id, updated_at" in error["message"]

    saved = await pipelines.orchestrator.post("/v1/pipelines?validate=false", json=body)
    assert saved.status_code == 201
    source = PostgresSource(PostgresConfig.model_validate(source_config))
    try:
        stats = load_stream(lake, source, DestinationSpec(namespace="unchecked"),
                            StreamSpec.model_validate(saved.json()["streams"][0]), "run-1", Progress())
    finally:
        source.close()
    assert stats.status == "failed"
    assert stats.error is not None
    assert stats.error.kind == "config"
    assert "stream sales.y: cursor column 'doc'" in stats.error.message
