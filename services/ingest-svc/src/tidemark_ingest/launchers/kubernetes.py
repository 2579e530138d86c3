"""Workers as Kubernetes Jobs: one batch/v1 Job per run, supervised through a watch on the Jobs.

The launcher keeps, in memory, the runs whose Job is live (launched here, adopted on a 409, or found
by the first list after a start) and reports each run's end once through the exit callback:
a Job that completed (the worker itself finished the run), failed (the deadline, the container's
exit code), vanished (deleted by someone else while live), or whose pod has been stuck (an image that
cannot be pulled, a crash loop, no node) for ``stuck_deadline_seconds``. Reporting is idempotent on
the service side (only a live run is ended), so several replicas watching the same Jobs, or a report
repeated after a resync, change nothing.

Every API call runs in a thread (the official client is synchronous); the client, clock and sleeper
are constructor arguments so tests can use a fake API server and a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import ClassVar

from tidemark.aio import cancel_and_wait
from tidemark.errors import ConflictError
from tidemark.logs import fields, log_context
from tidemark_ingest.launchers.base import ExitCallback, Launcher
from tidemark_ingest.launchers.k8s.client import KubeJobs, Obj, WatchExpired
from tidemark_ingest.launchers.k8s.manifest import LABEL_RUN_ID, SELECTOR, job_manifest, job_name
from tidemark_ingest.launchers.k8s.status import (
    FAILURE_REASONS,
    Ending,
    FailureReason,
    is_finished,
    job_ending,
    pod_stuck,
    run_id_of,
)
from tidemark_ingest.launchers.spec import WorkerSpec
from tidemark_ingest.metrics import WATCH_RESYNCS, WORKER_ADOPTIONS, WORKER_FAILURES, launcher_series_at_zero
from tidemark_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Sleeper = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
ERROR_BACKOFF_SECONDS = (0.5, 1, 2, 5, 10, 30)
REPORT_BACKOFF_SECONDS = (0.5, 2, 5)
UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class KubernetesLauncher(Launcher):
    name: ClassVar[str] = "kubernetes"

    def __init__(self, settings: IngestSettings, on_exit: ExitCallback, api: KubeJobs | None = None,
                 clock: Clock = time.monotonic, sleep: Sleeper = asyncio.sleep) -> None:
        self._settings = settings
        self._k8s = settings.kubernetes
        self._on_exit = on_exit
        self._api = api if api is not None else KubeJobs.from_settings(settings.kubernetes)
        self._clock = clock
        self._sleep = sleep
        self._live: dict[uuid.UUID, str] = {}  # run id -> Job name, while its end is not reported
        self._stopping: dict[uuid.UUID, asyncio.Event] = {}  # set once the Job is gone
        self._stuck_since: dict[uuid.UUID, float] = {}
        self._reported: set[uuid.UUID] = set()  # ended and reported; forgotten when the Job is deleted
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.synced = asyncio.Event()
        """Set once the first list of Jobs was read (the runs found live are adopted)."""
        launcher_series_at_zero(self.name, FAILURE_REASONS, watches=True)

    @property
    def namespace(self) -> str:
        return self._api.namespace

    def live_runs(self) -> set[uuid.UUID]:
        return set(self._live)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch_loop(), name="k8s-job-watch"),
                       asyncio.create_task(self._stuck_loop(), name="k8s-stuck-pods")]

    async def launch(self, spec: WorkerSpec) -> str:
        body = job_manifest(spec, self._k8s, self.namespace, self._settings.stop_grace_seconds)
        name = job_name(spec.run_id)
        created = await asyncio.to_thread(self._api.create_job, body)
        if created is None:
            # A retried create (or a second replica) got there first: the Job is this run's, adopt it.
            existing = await asyncio.to_thread(self._api.read_job, name)
            if existing is None or run_id_of(existing) != spec.run_id:
                raise ConflictError(f"a Job named {name} exists in namespace {self.namespace} for another run")
            WORKER_ADOPTIONS.labels(self.name, "create_conflict").inc()
            log.info("worker Job already existed; adopted", extra=fields(run_id=str(spec.run_id), job=name))
            if is_finished(existing):
                await self._on_event("MODIFIED", existing, listed=True)  # its end, unless reported already
                return name
        else:
            log.info("worker Job created", extra=fields(run_id=str(spec.run_id), job=name, namespace=self.namespace))
        self._live.setdefault(spec.run_id, name)
        return name

    async def stop(self, run_id: uuid.UUID, worker_ref: str | None, grace_seconds: float) -> bool:
        name = worker_ref or self._live.get(run_id) or job_name(run_id)
        gone = self._stopping.setdefault(run_id, asyncio.Event())
        try:
            log.info("deleting worker Job", extra=fields(run_id=str(run_id), job=name))
            if not await asyncio.to_thread(self._api.delete_job, name):
                self._live.pop(run_id, None)
                return False
            # Foreground: the Job is gone once its pod is, which has its terminationGracePeriodSeconds
            # (the service's stop_grace_seconds) to stop after SIGTERM.
            deadline = self._clock() + grace_seconds + 30
            while not gone.is_set() and self._clock() < deadline:
                if await asyncio.to_thread(self._api.read_job, name) is None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), timeout=min(1.0, max(0.05, grace_seconds / 10)))
            self._live.pop(run_id, None)
            return True
        finally:
            self._stopping.pop(run_id, None)

    async def close(self) -> None:
        """Stop watching. The Jobs keep running: they belong to the cluster, and the next start adopts them."""
        self._closing = True
        self._api.stop_watch()
        await cancel_and_wait(self._tasks)

    # --- watching Jobs --------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        """List, then watch from the list's resourceVersion; on 410 Gone or an error, list again."""
        failures = 0
        resource_version: str | None = None
        while not self._closing:
            try:
                if resource_version is None:
                    items, listed_at = await asyncio.to_thread(self._api.list_jobs, SELECTOR)
                    await self._resync(items)
                    resource_version = listed_at
                resource_version = await self._follow(resource_version)
                failures = 0
            except WatchExpired:
                log.info("Job watch expired (410 Gone); listing again")
                WATCH_RESYNCS.labels("expired").inc()
                resource_version = None
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closing:
                    return
                log.exception("Job watch failed; listing again after a pause")
                WATCH_RESYNCS.labels("error").inc()
                resource_version = None
                await self._sleep(ERROR_BACKOFF_SECONDS[min(failures, len(ERROR_BACKOFF_SECONDS) - 1)])
                failures += 1

    async def _follow(self, resource_version: str) -> str:
        """One watch request; returns the resourceVersion to go on from. The blocking stream runs in a
        thread, which hands each event to the loop and waits for it to be handled, so order holds."""
        loop = asyncio.get_running_loop()

        def pump() -> str:
            rv = resource_version
            for kind, job, event_rv in self._api.watch_jobs(SELECTOR, resource_version, self._k8s.watch_seconds):
                if kind != "BOOKMARK":
                    asyncio.run_coroutine_threadsafe(self._on_event(kind, job), loop).result()
                rv = event_rv or rv
                if self._closing:
                    break
            return rv

        return await asyncio.to_thread(pump)

    async def _resync(self, jobs: list[Obj]) -> None:
        """The full list: adopt live Jobs, report ended ones, and fail runs whose Job vanished."""
        seen: set[uuid.UUID] = set()
        for job in jobs:
            run_id = run_id_of(job)
            if run_id is None:
                continue
            seen.add(run_id)
            if not self.synced.is_set() and run_id not in self._live and not is_finished(job):
                WORKER_ADOPTIONS.labels(self.name, "listed").inc()
                log.info("adopted a running worker Job", extra=fields(run_id=str(run_id), job=job_name(run_id)))
            await self._on_event("ADDED" if run_id not in self._live else "MODIFIED", job, listed=True)
        for run_id in set(self._live) - seen:
            await self._on_event("DELETED", {"metadata": {"name": self._live[run_id],
                                                          "labels": {LABEL_RUN_ID: str(run_id)}}})
        self.synced.set()

    async def _on_event(self, kind: str, job: Obj, listed: bool = False) -> None:
        run_id = run_id_of(job)
        if run_id is None:
            return
        name = (job.get("metadata") or {}).get("name", job_name(run_id))
        if kind == "DELETED":
            self._reported.discard(run_id)
            stopping = self._stopping.get(run_id)
            if stopping is not None:
                stopping.set()
                self._live.pop(run_id, None)
            elif run_id in self._live:
                await self._report(run_id, Ending(code=1, reason="vanished",
                                                  message=f"the worker's Kubernetes Job {name} was deleted "
                                                          f"while the run was live"))
            return
        if kind not in ("ADDED", "MODIFIED"):
            return
        if not is_finished(job):
            # A Job being deleted is not adopted; one whose end was reported stays ended.
            deleting = (job.get("metadata") or {}).get("deletionTimestamp") is not None
            if run_id not in self._reported and not deleting:
                self._live.setdefault(run_id, name)
            return
        if run_id in self._reported or (run_id not in self._live and not listed):
            return  # reported before
        if run_id in self._stopping:
            return  # being stopped: the stop reports the run's end
        pods = await asyncio.to_thread(self._api.list_pods, f"{SELECTOR},{LABEL_RUN_ID}={run_id}")
        ending = job_ending(job, pods)
        if ending is not None:
            await self._report(run_id, ending)

    async def _report(self, run_id: uuid.UUID, ending: Ending) -> None:
        self._live.pop(run_id, None)
        self._reported.add(run_id)
        self._stuck_since.pop(run_id, None)
        if ending.reason is not None:
            WORKER_FAILURES.labels(self.name, ending.reason).inc()
        with log_context(run_id=str(run_id)):
            log.info("worker Job ended", extra=fields(exit_code=ending.code, reason=ending.message))
            # A Job's end is seen once (no process to wait on again): a database hiccup must not lose
            # its reason, which the heartbeat reaper could only guess at.
            for attempt, pause in enumerate((*REPORT_BACKOFF_SECONDS, None)):
                try:
                    await self._on_exit(run_id, ending.code, ending.message)
                    return
                except Exception:
                    if pause is None:
                        log.exception("could not record the worker's end; the heartbeat reaper will end the run")
                        return
                    log.warning("could not record the worker's end; retrying",
                                extra=fields(attempt=attempt + 1), exc_info=True)
                    await self._sleep(pause)

    # --- pods that cannot make progress ---------------------------------------------------------

    async def _stuck_loop(self) -> None:
        while not self._closing:
            await self._sleep(self._k8s.poll_seconds)
            try:
                await self.check_stuck()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not check the workers' pods; will retry")

    async def check_stuck(self) -> None:
        """Fail live runs whose pod has been stuck for ``stuck_deadline_seconds`` (and delete their Job)."""
        if not self._live:
            return
        # Pods that ended cannot be stuck, and they are most of them (kept for ttl_seconds_after_finished).
        pods = await asyncio.to_thread(self._api.list_pods, SELECTOR, UNFINISHED_PODS)
        now = self._clock()
        stuck: dict[uuid.UUID, tuple[FailureReason, str]] = {}
        for pod in pods:
            run_id = run_id_of(pod)
            found = pod_stuck(pod)
            if run_id in self._live and found is not None:
                stuck[run_id] = found
        for run_id in set(self._stuck_since) - set(stuck):
            del self._stuck_since[run_id]
        for run_id, (reason, detail) in stuck.items():
            since = self._stuck_since.setdefault(run_id, now)
            if now - since < self._k8s.stuck_deadline_seconds or run_id not in self._live:
                continue
            name = self._live[run_id]
            message = (f"the worker's pod was stuck for more than {self._k8s.stuck_deadline_seconds:g}s: {detail}")
            await self._report(run_id, Ending(code=1, reason=reason, message=message))
            # Reported first, so the deletion's event is not taken for a vanished Job.
            await asyncio.to_thread(self._api.delete_job, name)
