"""The Jobs page (``/jobs``) and a run's page (``/jobs/runs/{id}``): server-rendered HTML for
browsers, with a little JavaScript (auto-refresh, the live log).

Authority is the API's: a browser signs in with an API token (the form at ``/jobs``), which
jobs-svc checks like a bearer token (any scope: ``read`` is enough to view; a revoked token signs the
browser out) and keeps in an HttpOnly, SameSite=Strict cookie scoped to ``/jobs`` (script on the page
cannot read it, other sites cannot send it), ``Secure`` outside development. Without a valid token
the pages show only the sign-in form. The pages' POSTs (sign-in, sign-out) refuse another site's
origin, and sign-out also needs the CSRF token tied to the session (an HMAC of the cookie's token).
Filters are query parameters, so a view can be bookmarked.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from tidemark.access import Principal, Scope, TokenRegistry
from tidemark.api.auth import log_denial
from tidemark.api.inputs import storable
from tidemark.api.problems import problem
from tidemark.errors import ConfigError
from tidemark.events import TRIGGERS, RunStatus
from tidemark_jobs import logstore, query
from tidemark_jobs.deps import Runtime
from tidemark_jobs.detail import run_detail
from tidemark_jobs.models import RunView
from tidemark_jobs.schemas import LogOut, RunOut
from tidemark_jobs.timeline import picture, svg

COOKIE = "tidemark_token"
COOKIE_SECONDS = 8 * 3600
PAGE_SIZE = 50
SECTIONS: dict[str, tuple[RunStatus, ...]] = {
    "upcoming": (RunStatus.SCHEDULED,),
    "running": (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING),
    "failed": (RunStatus.FAILED,),
    "all": (),
}
FILTERS = ("q", "trigger", "pipeline_id", "connection_id", "started_after", "started_before")

router = APIRouter(prefix="/jobs")
_templates = Environment(loader=PackageLoader("tidemark_jobs", "templates"), autoescape=select_autoescape(),
                         trim_blocks=True, lstrip_blocks=True)


def _when(at: datetime | None) -> str:
    return at.isoformat(" ", "seconds")[:19] if at is not None else "–"  # noqa: RUF001 - an en dash: no time


_templates.filters["when"] = _when


def _principal(request: Request, token: str | None) -> Principal | None:
    registry: TokenRegistry = request.app.state.api_tokens
    principal = registry.authenticate(token) if token else None
    return principal if principal is not None and principal.scope.allows(Scope.READ) else None


def _signed_in(request: Request) -> bool:
    if _principal(request, request.cookies.get(COOKIE)) is not None:
        return True
    log_denial(request, 401, "no valid session cookie")
    return False


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: only a holder of the session's token can compute it."""
    return hmac.new(session_token.encode(), b"tidemark-jobs-csrf", hashlib.sha256).hexdigest()


def _csrf(request: Request) -> str:
    return csrf_token(request.cookies.get(COOKIE, ""))


def _cross_site(request: Request) -> bool:
    """A POST another site's page made: browsers say so in Sec-Fetch-Site, or in an Origin not ours."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    # Host only: behind a TLS-terminating Ingress the browser's origin is https while the app sees http.
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")


def _forbidden(request: Request, reason: str) -> HTMLResponse:
    log_denial(request, 403, reason)
    return _html("forbidden.html", 403, reason=reason)


def _html(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    page = _templates.get_template(name).render(**context)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _sign_in(request: Request, error: str | None = None, status: int = 401) -> HTMLResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _html("signin.html", status, next=target, error=error)


def _safe_next(target: str) -> str:
    # Only back to a page of this app, never to another site (an open redirect).
    return target if target.startswith("/jobs") and not target.startswith("//") else "/jobs"


@router.post("/sign-in")
async def sign_in(request: Request, rt: Runtime) -> Response:
    if _cross_site(request):
        return _forbidden(request, "a sign-in from another site")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/jobs"])[0])
    if _principal(request, token) is None:
        log_denial(request, 401, "sign-in with an unknown or revoked token")
        return _html("signin.html", 401, next=target, error="That token is not valid.")
    response = RedirectResponse(target, status_code=303)
    # Behind a TLS-terminating Ingress the app sees http, so Secure follows the environment, not the scheme.
    secure = rt.settings.platform.environment != "development" or request.url.scheme == "https"
    response.set_cookie(COOKIE, token, max_age=COOKIE_SECONDS, path="/jobs", httponly=True, samesite="strict",
                        secure=secure)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    session = request.cookies.get(COOKIE)
    given = (form.get("csrf") or [""])[0]
    if _cross_site(request) or (session and not hmac.compare_digest(given, csrf_token(session))):
        return _forbidden(request, "a sign-out without this session's CSRF token")
    response = RedirectResponse("/jobs", status_code=303)
    response.delete_cookie(COOKIE, path="/jobs")
    return response


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(raw: str | None) -> uuid.UUID | None:
    return uuid.UUID(raw) if raw else None


def _filters(request: Request) -> tuple[dict[str, str], query.RunFilter, list[str]]:
    """The page's filters as given (for the form and links), as a query filter, and any errors."""
    given = {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}
    errors = [f"{k}: text with a NUL or a lone surrogate is ignored" for k, v in given.items() if not storable(v)]
    given = {k: v for k, v in given.items() if storable(v)}

    def parse(name: str, convert: Any) -> Any:
        try:
            return convert(given.get(name))
        except ValueError:
            errors.append(f"{name}: {given[name]!r} is not valid; it is ignored")
            given.pop(name)
            return None

    pipeline, connection = parse("pipeline_id", _uuid), parse("connection_id", _uuid)
    after, before = parse("started_after", _time), parse("started_before", _time)
    trigger = given.get("trigger")
    if trigger and trigger not in TRIGGERS:
        errors.append(f"trigger: {trigger!r} is not one of {', '.join(TRIGGERS)}; it is ignored")
        given.pop("trigger")
        trigger = None
    where = query.RunFilter(
        pipeline_ids=[pipeline] if pipeline else [], connection_ids=[connection] if connection else [],
        triggers=[trigger] if trigger else [], text=given.get("q"),
        ranges={"started_at": (after, before)} if after or before else {},
    )
    return given, where, errors


@router.get("", response_class=HTMLResponse)
async def jobs_page(request: Request, rt: Runtime) -> Response:
    if not _signed_in(request):
        return _sign_in(request)
    section = request.query_params.get("section", "all")
    section = section if section in SECTIONS else "all"
    given, where, errors = _filters(request)
    cursor = request.query_params.get("cursor") or None
    cursor = cursor if cursor is None or storable(cursor) else None
    listed = query.RunFilter(SECTIONS[section], where.pipeline_ids, where.connection_ids, where.triggers,
                             where.text, where.ranges)
    now = datetime.now(UTC)
    async with rt.sessions() as session:
        try:
            rows, next_cursor = await query.page(session, listed, "newest", PAGE_SIZE, cursor)
        except ConfigError:  # a cursor from another view: start at the first page
            rows, next_cursor = await query.page(session, listed, "newest", PAGE_SIZE, None)
        totals = await query.totals(session, where)
        drawn = await picture(session, where, now)
    counts = {name: sum(totals[s] for s in statuses) if statuses else sum(totals.values())
              for name, statuses in SECTIONS.items()}

    def link(**changes: str | None) -> str:
        params = {**given, "section": section, **changes}
        return "/jobs?" + urlencode({k: v for k, v in params.items() if v})

    return _html(
        "jobs.html", csrf=_csrf(request), runs=[RunOut.model_validate(r) for r in rows], section=section,
        sections=list(SECTIONS),
        counts=counts, totals=totals, filters=given, errors=errors, triggers=TRIGGERS, link=link,
        next_link=link(cursor=next_cursor) if next_cursor else None, picture=drawn, now=now,
        svg=svg(drawn, lambda pipeline_id: link(pipeline_id=str(pipeline_id), cursor=None)),
        refresh=rt.settings.page_refresh_seconds, first_page=cursor is None,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(run_id: uuid.UUID, request: Request, rt: Runtime) -> Response:
    if not _signed_in(request):
        return _sign_in(request)
    async with rt.sessions() as session:
        run = await run_detail(session, run_id)
        records = await logstore.read(session, run_id, None, 1000)
    if run is None:
        return _html("missing.html", 404, run_id=run_id)
    return _html("run.html", csrf=_csrf(request), run=run, records=[LogOut.model_validate(r) for r in records],
                 live=not run.status.terminal, refresh=rt.settings.page_refresh_seconds)


@router.get("/runs/{run_id}/log")
async def run_log(run_id: uuid.UUID, request: Request, rt: Runtime, after: int | None = None) -> Response:
    """The live log for the run page's script (cookie authority, like the pages)."""
    if not _signed_in(request):
        return problem(401, "unauthorized", "Unauthorized", "Sign in on the Jobs page: no valid session cookie.")
    async with rt.sessions() as session:
        view = await session.get(RunView, run_id)
        records = await logstore.read(session, run_id, after, 500) if view is not None else []
    if view is None:
        return JSONResponse({"detail": "unknown run"}, status_code=404)
    return JSONResponse({
        "items": [LogOut.model_validate(r).model_dump(mode="json") for r in records],
        "next_after": records[-1].seq if records else after,
        "live": not RunStatus(view.status).terminal, "status": view.status,
    }, headers={"Cache-Control": "no-store"})
