"""``build_app``: one or several service definitions become one FastAPI app with a lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from tidemark import __version__
from tidemark.access import TokenRegistry
from tidemark.access import projection as issued_tokens
from tidemark.api.auth import TokenVerifier, require_admin, require_internal_token, require_token
from tidemark.api.inputs import reject_unstorable_text, require_json_body
from tidemark.api.limits import BodyLimits
from tidemark.api.metrics import install_metrics
from tidemark.api.openapi import install_openapi, problem_responses
from tidemark.api.problems import MEDIA_TYPE, install_problem_handlers
from tidemark.bus import Bus
from tidemark.errors import ConfigError
from tidemark.logs import configure_logging
from tidemark.service import ServiceDefinition, ServiceRuntime


def build_app(
    services: Sequence[tuple[ServiceDefinition[Any, Any], Any]],
    *,
    title: str,
    bus: Bus | None = None,
    migrate: bool = False,
) -> FastAPI:
    """Build the app. ``bus`` is shared by all services when given (embedded mode);
    ``migrate`` runs each service's migrations on start-up (embedded mode only: in
    deployments migrations are their own step)."""
    first_settings = services[0][1]
    configure_logging(first_settings.log_level, first_settings.log_format)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtimes = {d.name: ServiceRuntime(d, s, bus) for d, s in services}
        app.state.runtimes = runtimes
        started: list[ServiceRuntime[Any, Any]] = []
        try:
            for runtime in runtimes.values():
                tokens = issued_tokens.TokenProjection(runtime)
                issued_tokens.subscribe(runtime, tokens)
                await runtime.start(migrate=migrate)
                started.append(runtime)
                await issued_tokens.attach(runtime, tokens, app.state.api_tokens)
            if bus is not None:
                await bus.start()
            yield
        finally:
            if bus is not None:
                await bus.stop()
            for runtime in reversed(started):
                await runtime.stop()

    # /docs and /redoc load Swagger UI and ReDoc from files fastapi-offline ships (served under
    # /static-offline-docs), not from a CDN: they work offline and behind strict firewalls.
    # No validator badge either: Swagger UI would send the document to validator.swagger.io.
    app = FastAPIOffline(
        title=title, version=__version__, lifespan=lifespan, swagger_ui_parameters={"validatorUrl": None}
    )
    app.state.api_tokens = TokenRegistry.from_settings([(s.auth, s.platform) for _, s in services])
    app.state.internal_tokens = TokenVerifier.for_internal(first_settings.platform)
    if any(app.state.api_tokens.knows_digest(d) for d in app.state.internal_tokens.digests):
        # Then one secret would open both doors, and a user could call service-to-service routes.
        raise ConfigError("platform.internal_token must differ from every API token")

    install_problem_handlers(app)
    # A body over the limits never reaches a route or a parser (the metrics layer, added after, still counts it).
    app.add_middleware(BodyLimits, max_body_bytes=first_settings.platform.max_body_bytes,
                       max_json_depth=first_settings.platform.max_json_depth)
    install_metrics(app)
    body_checks = [Depends(require_json_body), Depends(reject_unstorable_text)]
    for definition, _ in services:
        for router in definition.routers:
            app.include_router(router, dependencies=[Depends(require_token), *body_checks])
        for router in definition.admin_routers:
            app.include_router(router, dependencies=[Depends(require_admin), *body_checks])
        for router in definition.internal_routers:
            app.include_router(router, dependencies=[Depends(require_internal_token), *body_checks])
        for router in definition.pages:
            app.include_router(router, include_in_schema=False)
    _install_health(app, [d.name for d, _ in services])
    install_openapi(app)
    return app


def _install_health(app: FastAPI, names: list[str]) -> None:
    async def _ready(request: Request, only: list[str]) -> JSONResponse:
        runtimes: dict[str, ServiceRuntime[Any, Any]] = request.app.state.runtimes
        checks = {name: await runtimes[name].ready() for name in only}
        ok = all(all(c.values()) for c in checks.values())
        if ok:
            return JSONResponse({"status": "ready", "checks": checks})
        return JSONResponse(
            {"type": "https://tidemark.dev/problems/not-ready", "title": "Not ready", "status": 503,
             "detail": "a dependency does not answer", "checks": checks},
            status_code=503, media_type=MEDIA_TYPE,
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=problem_responses(503))
    async def readyz(request: Request) -> JSONResponse:
        return await _ready(request, names)

    for name in names:
        def _make(svc: str) -> None:
            @app.get(f"/{svc}/healthz", tags=["health"], name=f"{svc}-healthz")
            async def svc_healthz() -> dict[str, str]:
                return {"status": "ok", "service": svc}

            @app.get(f"/{svc}/readyz", tags=["health"], name=f"{svc}-readyz", responses=problem_responses(503))
            async def svc_readyz(request: Request) -> JSONResponse:
                return await _ready(request, [svc])

        _make(name)
