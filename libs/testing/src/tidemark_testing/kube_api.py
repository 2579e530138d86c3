"""A fake Kubernetes API server for the endpoints the Kubernetes launcher uses, over real HTTP.

No API server can run on our machines, and ``kmock`` (PyPI) answers lists and watches without label
selectors, resourceVersions or 410 Gone. This one keeps Jobs and pods in memory and speaks the wire
protocol the official client expects: create (201, or 409 AlreadyExists), read (404), list with
``labelSelector`` and a ``resourceVersion``, watch (chunked JSON lines, history after the given
resourceVersion, an ``ERROR`` event with code 410 once that history is compacted), delete (with the
propagation policy recorded; foreground deletion marks the Job, removes its pods, then removes it),
and a pod list. Tests change the cluster through its methods (a Job completes or fails, a pod waits in
``ImagePullBackOff``, someone deletes a Job, the watch history expires).

It runs on its own event loop in a thread, so a client that blocked the test's loop would still get
its answers (and the test can measure that the loop was free).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from kubernetes import client

from tidemark_testing.ports import HOST

Obj = dict[str, Any]
T = TypeVar("T")
JOBS = "/apis/batch/v1/namespaces/{namespace}/jobs"
PODS = "/api/v1/namespaces/{namespace}/pods"


@dataclass(frozen=True)
class Call:
    """One request the server answered: method, path, query parameters, JSON body (if any)."""

    method: str
    path: str
    query: dict[str, str]
    body: Obj | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _is_watch(request: web.Request) -> bool:
    # The official client sends Python's `True`; the API server parses booleans like Go's ParseBool.
    return request.query.get("watch", "").lower() in ("true", "1", "t")


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label (or field) selectors (``a=b,c==d,e!=f,g``), as the launcher sends them."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class _State:
    version: int = 0
    compacted: int = 0  # a watch from below this resourceVersion gets 410 Gone
    jobs: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: list[tuple[int, str, Obj]] = field(default_factory=list)
    watchers: set[asyncio.Queue[tuple[int, str, Obj] | None]] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)


class FakeKubeApi:
    """Start with :func:`fake_kube_api`; ``api_client()`` gives an official client pointed at it."""

    def __init__(self, delete_seconds: float = 0.05, latency: float = 0.0) -> None:
        self.delete_seconds = delete_seconds
        self.latency = latency
        self.port = 0
        self._state = _State()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-kube-api", daemon=True)
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._on_loop(self._serve())

    def stop(self) -> None:
        self._on_loop(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post(JOBS, self._create_job)
        app.router.add_get(JOBS, self._list_jobs)
        app.router.add_get(JOBS + "/{name}", self._read_job)
        app.router.add_delete(JOBS + "/{name}", self._delete_job)
        app.router.add_get(PODS, self._list_pods)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        for queue in list(self._state.watchers):
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests look at and change -----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        return list(self._state.calls)

    def calls_to(self, method: str, suffix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    def jobs(self) -> list[Obj]:
        return [copy.deepcopy(j) for j in self._state.jobs.values()]

    def job(self, name: str, namespace: str = "default") -> Obj | None:
        job = self._state.jobs.get((namespace, name))
        return copy.deepcopy(job) if job is not None else None

    def finish_job(self, name: str, condition: str = "Complete", reason: str | None = None,
                   message: str | None = None, namespace: str = "default") -> None:
        """The Job ends: ``Complete``, or ``Failed`` with ``reason`` (``BackoffLimitExceeded``,
        ``DeadlineExceeded``)."""
        status: Obj = {"conditions": [{"type": condition, "status": "True", "reason": reason, "message": message,
                                       "lastTransitionTime": _now()}]}
        status["succeeded" if condition == "Complete" else "failed"] = 1
        self._on_loop(self._modify_job(namespace, name, status))

    def add_pod(self, job_name: str, status: Obj, namespace: str = "default") -> str:
        """A pod of the Job (its template's labels) with ``status``; added or replaced."""
        return self._on_loop(self._add_pod(namespace, job_name, status))

    def remove_job(self, name: str, namespace: str = "default") -> None:
        """Someone else deletes the Job (``kubectl delete job``), at once."""
        self._on_loop(self._remove_job(namespace, name))

    def expire_watches(self) -> None:
        """The server forgets its event history and ends every watch: a client that watches again from
        its last resourceVersion gets 410 Gone and must list again."""
        self._on_loop(self._expire())

    # --- the cluster's changes, on the server's loop ------------------------------------------------

    def _bump(self, obj: Obj) -> int:
        self._state.version += 1
        obj["metadata"]["resourceVersion"] = str(self._state.version)
        return self._state.version

    def _publish(self, kind: str, obj: Obj) -> None:
        version = int(obj["metadata"]["resourceVersion"])
        event = (version, kind, copy.deepcopy(obj))
        self._state.history.append(event)
        for queue in list(self._state.watchers):
            queue.put_nowait(event)

    async def _modify_job(self, namespace: str, name: str, status: Obj) -> None:
        job = self._state.jobs[(namespace, name)]
        job["status"] = status
        self._bump(job)
        self._publish("MODIFIED", job)

    async def _add_pod(self, namespace: str, job_name: str, status: Obj) -> str:
        job = self._state.jobs[(namespace, job_name)]
        name = f"{job_name}-pod"
        labels = dict(job["spec"]["template"]["metadata"]["labels"])
        labels["batch.kubernetes.io/job-name"] = job_name
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace, "labels": labels, "uid": str(uuid.uuid4())},
               "spec": copy.deepcopy(job["spec"]["template"]["spec"]), "status": status}
        self._bump(pod)
        self._state.pods[(namespace, name)] = pod
        return name

    async def _remove_job(self, namespace: str, name: str) -> None:
        job = self._state.jobs.pop((namespace, name), None)
        if job is None:
            return
        for key in [k for k, p in self._state.pods.items()
                    if k[0] == namespace and p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name]:
            del self._state.pods[key]
        self._bump(job)
        self._publish("DELETED", job)

    async def _expire(self) -> None:
        self._state.compacted = self._state.version + 1
        self._state.history.clear()
        for queue in list(self._state.watchers):
            queue.put_nowait(None)

    # --- the HTTP API ----------------------------------------------------------------------------------

    async def _record(self, request: web.Request, body: Obj | None = None) -> None:
        self._state.calls.append(Call(request.method, request.path, dict(request.query), body))
        if self.latency and not _is_watch(request):
            await asyncio.sleep(self.latency)

    async def _create_job(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        body: Obj = await request.json()
        await self._record(request, body)
        name = body["metadata"]["name"]
        if (namespace, name) in self._state.jobs:
            return web.json_response(_status(409, "AlreadyExists", f'jobs.batch "{name}" already exists'),
                                     status=409)
        job = copy.deepcopy(body)
        job["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        job["status"] = {"startTime": _now(), "active": 1}
        self._bump(job)
        self._state.jobs[(namespace, name)] = job
        self._publish("ADDED", job)
        return web.json_response(job, status=201)

    async def _read_job(self, request: web.Request) -> web.Response:
        await self._record(request)
        job = self._state.jobs.get((request.match_info["namespace"], request.match_info["name"]))
        if job is None:
            return web.json_response(_status(404, "NotFound", "not found"), status=404)
        return web.json_response(job)

    async def _delete_job(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        raw = await request.read()
        await self._record(request, json.loads(raw) if raw else None)
        job = self._state.jobs.get((namespace, name))
        if job is None:
            return web.json_response(_status(404, "NotFound", f'jobs.batch "{name}" not found'), status=404)
        job["metadata"]["deletionTimestamp"] = _now()
        job["metadata"]["finalizers"] = ["foregroundDeletion"]
        self._bump(job)
        self._publish("MODIFIED", job)
        # Foreground: the pods go first (their grace period), then the Job.
        self._loop.call_later(self.delete_seconds, lambda: self._loop.create_task(self._remove_job(namespace, name)))
        return web.json_response(job)

    async def _list_pods(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace, selector = request.match_info["namespace"], request.query.get("labelSelector", "")
        fields = request.query.get("fieldSelector", "")
        items = [p for (ns, _), p in self._state.pods.items() if ns == namespace
                 and matches(p["metadata"].get("labels", {}), selector)
                 and matches({"status.phase": p.get("status", {}).get("phase", "Pending")}, fields)]
        return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self._state.version)}, "items": items})

    async def _list_jobs(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        namespace, selector = request.match_info["namespace"], request.query.get("labelSelector", "")
        if _is_watch(request):
            return await self._watch(request, namespace, selector)
        items = [j for (ns, _), j in self._state.jobs.items() if ns == namespace
                 and matches(j["metadata"].get("labels", {}), selector)]
        return web.json_response({"kind": "JobList", "apiVersion": "batch/v1",
                                  "metadata": {"resourceVersion": str(self._state.version)}, "items": items})

    async def _watch(self, request: web.Request, namespace: str, selector: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        since = int(request.query.get("resourceVersion") or self._state.version)

        async def send(kind: str, obj: Obj) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since < self._state.compacted:
            await send("ERROR", _status(410, "Expired", f"too old resource version: {since}"))
            return response
        queue: asyncio.Queue[tuple[int, str, Obj] | None] = asyncio.Queue()
        self._state.watchers.add(queue)
        try:
            for past in self._state.history:
                queue.put_nowait(past)
            timeout = float(request.query.get("timeoutSeconds", "30"))
            deadline = self._loop.time() + timeout
            while (left := deadline - self._loop.time()) > 0:
                try:
                    event: tuple[int, str, Obj] | None = await asyncio.wait_for(queue.get(), timeout=left)
                except TimeoutError:
                    break
                if event is None:
                    break
                version, kind, obj = event
                meta = obj["metadata"]
                if version > since and meta.get("namespace") == namespace \
                        and matches(meta.get("labels", {}), selector):
                    await send(kind, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._state.watchers.discard(queue)
        return response


@contextmanager
def fake_kube_api(delete_seconds: float = 0.05, latency: float = 0.0) -> Iterator[FakeKubeApi]:
    server = FakeKubeApi(delete_seconds=delete_seconds, latency=latency)
    server.start()
    try:
        yield server
    finally:
        server.stop()
