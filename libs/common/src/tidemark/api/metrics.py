"""HTTP metrics. The route label is the path template, never the raw path."""

from __future__ import annotations

import functools
import re
import time

from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette._utils import get_route_path
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.routing import compile_path

HTTP_REQUESTS = Counter(
    "tidemark_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "tidemark_http_request_duration_seconds", "HTTP request duration.", ["method", "route"]
)
# The label of every path no route serves (scanners, typos): one value, however many paths.
UNMATCHED = "unmatched"
# Any token is a valid HTTP method; a scanner's inventions share one label value.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


@functools.lru_cache(maxsize=1024)
def _regex(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


def route_template(request: Request) -> str:
    """The template of the first route whose path matches, e.g. ``/v1/pipelines/{pipeline_id}``.

    The method is not considered, so a 405 is labelled by the path it was sent to. Routes come
    from FastAPI's view of the app (included routers flattened, their prefixes applied), the same
    one the OpenAPI document is built from.
    """
    path = get_route_path(request.scope)
    for context in iter_route_contexts(request.app.routes):
        template = context.path_format
        if template is not None and _regex(template).match(path):
            return template
    return UNMATCHED


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = route_template(request)
        method = request.method if request.method in METHODS else OTHER_METHOD
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
        return response


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
