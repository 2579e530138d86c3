"""A small Iceberg REST catalog server over any pyiceberg catalog (a SQL catalog, usually).

No REST catalog server installs from PyPI or npm on our machines, and the Java
ones need Docker. This adapter follows the Iceberg REST OpenAPI spec for the
calls a writer makes (config, OAuth2 client credentials, namespaces, tables:
create, load, exists, commit, drop, list) so tests drive pyiceberg's real
``RestCatalog`` client, HTTP and all. It is a test and development tool, not a
production catalog: no views, no multi-table transactions, no credential vending.

Run it by hand::

    python -m tidemark_testing.rest_catalog --catalog-uri sqlite:///rest.db \
        --warehouse file:///tmp/wh --port 8181 [--token T] [--client ID:SECRET]
"""

from __future__ import annotations

import argparse
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import CreateTableRequest, TableResponse
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.table import CommitTableRequest, Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from tidemark.lakehouse import LakehouseSettings, open_catalog

NAMESPACE_SEPARATOR = "\x1f"  # the spec's default; clients send it URL-encoded as %1F
ENDPOINTS = [
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
]

_ERRORS: dict[type[Exception], tuple[int, str]] = {
    NoSuchNamespaceError: (404, "NoSuchNamespaceException"),
    NoSuchTableError: (404, "NoSuchTableException"),
    NamespaceAlreadyExistsError: (409, "AlreadyExistsException"),
    TableAlreadyExistsError: (409, "AlreadyExistsException"),
    NamespaceNotEmptyError: (409, "NamespaceNotEmptyException"),
    CommitFailedException: (409, "CommitFailedException"),
}


class _RefusedError(Exception):
    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


def _error(code: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=code)


def create_app(catalog: Catalog, warehouse: str = "default", *, token: str | None = None,
               clients: dict[str, str] | None = None) -> FastAPI:
    """The REST catalog app serving ``catalog`` as the one warehouse ``warehouse``.

    With ``token`` or ``clients`` (OAuth2 ``client_id → client_secret``) every call
    but the token exchange needs ``Authorization: Bearer``.
    """
    app = FastAPI(title="Tidemark test Iceberg REST catalog")
    issued: set[str] = {token} if token else set()
    protected = bool(token or clients)
    lock = threading.Lock()  # one writer at a time keeps SQLite happy; conflicts are still detected

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if not protected:
            return
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or value not in issued:
            raise _RefusedError(401, "NotAuthorizedException", "missing or invalid bearer token")

    def known(prefix: str) -> None:
        if prefix != warehouse:
            raise _RefusedError(404, "NoSuchWarehouseException", f"no warehouse {prefix!r}")

    auth = [Depends(authorized)]

    @app.exception_handler(_RefusedError)
    async def _refused(_: Request, exc: _RefusedError) -> JSONResponse:
        return _error(exc.code, exc.kind, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "BadRequestException", str(exc.errors()[:3]))

    for exc_type, (code, kind) in _ERRORS.items():
        app.add_exception_handler(exc_type, _handler(code, kind))
    app.add_exception_handler(ValidationError, _handler(400, "BadRequestException"))
    app.add_exception_handler(ValueError, _handler(400, "BadRequestException"))

    @app.post("/v1/oauth/tokens")
    async def oauth_token(request: Request) -> JSONResponse:
        # A form body (RFC 6749 §4.4), parsed by hand: python-multipart is not a dependency.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        expected = (clients or {}).get(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials" or expected is None or \
                not secrets.compare_digest(expected, form.get("client_secret", "")):
            return JSONResponse({"error": "invalid_client", "error_description": "unknown client or secret"},
                                status_code=401)
        access = secrets.token_urlsafe(24)
        issued.add(access)
        return JSONResponse({"access_token": access, "token_type": "bearer", "expires_in": 3600,
                             "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})

    @app.get("/v1/config", dependencies=auth)
    def config(warehouse_param: Annotated[str | None, Query(alias="warehouse")] = None) -> dict[str, Any]:
        if warehouse_param not in (None, "", warehouse):
            raise _RefusedError(404, "NoSuchWarehouseException", f"no warehouse {warehouse_param!r}")
        return {"defaults": {}, "overrides": {"prefix": warehouse}, "endpoints": ENDPOINTS}

    @app.get("/v1/{prefix}/namespaces", dependencies=auth)
    def list_namespaces(prefix: str) -> dict[str, Any]:
        known(prefix)
        return {"namespaces": [list(ns) for ns in catalog.list_namespaces()]}

    @app.post("/v1/{prefix}/namespaces", dependencies=auth)
    async def create_namespace(prefix: str, request: Request) -> dict[str, Any]:
        known(prefix)
        body = await request.json()
        namespace, props = tuple(body["namespace"]), body.get("properties") or {}
        with lock:
            catalog.create_namespace(namespace, props)
        return {"namespace": list(namespace), "properties": props}

    @app.get("/v1/{prefix}/namespaces/{namespace}", dependencies=auth)
    def load_namespace(prefix: str, namespace: str) -> dict[str, Any]:
        known(prefix)
        ns = _namespace(namespace)
        return {"namespace": list(ns), "properties": catalog.load_namespace_properties(ns)}

    @app.head("/v1/{prefix}/namespaces/{namespace}", dependencies=auth)
    def namespace_exists(prefix: str, namespace: str) -> Response:
        known(prefix)
        catalog.load_namespace_properties(_namespace(namespace))
        return Response(status_code=204)

    @app.delete("/v1/{prefix}/namespaces/{namespace}", dependencies=auth)
    def drop_namespace(prefix: str, namespace: str) -> Response:
        known(prefix)
        with lock:
            catalog.drop_namespace(_namespace(namespace))
        return Response(status_code=204)

    @app.get("/v1/{prefix}/namespaces/{namespace}/tables", dependencies=auth)
    def list_tables(prefix: str, namespace: str) -> dict[str, Any]:
        known(prefix)
        return {"identifiers": [{"namespace": list(ident[:-1]), "name": ident[-1]}
                                for ident in catalog.list_tables(_namespace(namespace))]}

    @app.post("/v1/{prefix}/namespaces/{namespace}/tables", dependencies=auth)
    async def create_table(prefix: str, namespace: str, request: Request) -> Response:
        known(prefix)
        body = await request.json()
        for optional in ("location", "partition-spec", "write-order"):
            # Optional in the spec, so clients omit them; pyiceberg's model still wants the keys.
            body.setdefault(optional, None)
        create = CreateTableRequest.model_validate(body)
        if create.stage_create:
            raise _RefusedError(400, "BadRequestException", "staged table creation is not supported here")
        with lock:
            table = catalog.create_table(
                (*_namespace(namespace), create.name), schema=create.table_schema, location=create.location,
                partition_spec=create.partition_spec or UNPARTITIONED_PARTITION_SPEC,
                sort_order=create.write_order or UNSORTED_SORT_ORDER, properties=create.properties,
            )
        return _table_response(table)

    @app.get("/v1/{prefix}/namespaces/{namespace}/tables/{table}", dependencies=auth)
    def load_table(prefix: str, namespace: str, table: str) -> Response:
        known(prefix)
        return _table_response(catalog.load_table((*_namespace(namespace), table)))

    @app.head("/v1/{prefix}/namespaces/{namespace}/tables/{table}", dependencies=auth)
    def table_exists(prefix: str, namespace: str, table: str) -> Response:
        known(prefix)
        catalog.load_table((*_namespace(namespace), table))
        return Response(status_code=204)

    @app.post("/v1/{prefix}/namespaces/{namespace}/tables/{table}", dependencies=auth)
    async def commit_table(prefix: str, namespace: str, table: str, request: Request) -> Response:
        known(prefix)
        commit = CommitTableRequest.model_validate_json(await request.body())
        with lock:
            current = catalog.load_table((*_namespace(namespace), table))
            # The catalog checks every requirement against the current metadata: a stale client gets a 409.
            result = catalog.commit_table(current, tuple(commit.requirements), tuple(commit.updates))
        return Response(result.model_dump_json(), media_type="application/json")

    @app.delete("/v1/{prefix}/namespaces/{namespace}/tables/{table}", dependencies=auth)
    def drop_table(prefix: str, namespace: str, table: str) -> Response:
        known(prefix)
        with lock:
            catalog.drop_table((*_namespace(namespace), table))
        return Response(status_code=204)

    return app


def _handler(code: int, kind: str) -> Callable[[Request, Exception], Any]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return _error(code, kind, str(exc) or kind)

    return handle


def _namespace(path: str) -> tuple[str, ...]:
    # The server already percent-decoded the path: %1F arrives as the separator itself.
    return tuple(path.split(NAMESPACE_SEPARATOR))


def _table_response(table: Table) -> Response:
    body = TableResponse(**{"metadata-location": table.metadata_location, "metadata": table.metadata, "config": {}})
    return Response(body.model_dump_json(), media_type="application/json")


class RestCatalogServer:
    """The app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.uri = f"http://{host}:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="rest-catalog", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the REST catalog server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def serving(backend: LakehouseSettings, warehouse: str = "default", *, token: str | None = None,
            clients: dict[str, str] | None = None) -> Iterator[RestCatalogServer]:
    """A REST catalog on loopback whose tables live in ``backend``'s SQL catalog and warehouse."""
    server = RestCatalogServer(create_app(open_catalog(backend), warehouse, token=token, clients=clients))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog-uri", required=True, help="SQL catalog URL the tables are kept in")
    parser.add_argument("--warehouse", required=True, help="warehouse location (file://, s3://, abfs://)")
    parser.add_argument("--name", default="default", help="warehouse name clients ask for")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--token", help="a static bearer token to accept")
    parser.add_argument("--client", action="append", default=[], help="OAuth2 client as ID:SECRET")
    args = parser.parse_args(argv)
    backend = LakehouseSettings(catalog_uri=args.catalog_uri, warehouse=args.warehouse)
    clients = dict(c.split(":", 1) for c in args.client)
    app = create_app(open_catalog(backend), args.name, token=args.token, clients=clients)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
