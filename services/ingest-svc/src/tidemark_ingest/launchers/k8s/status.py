"""Reading a Job and its pod: finished or not, and why a failure happened, in words.

Every ``reason`` here is one of :data:`FAILURE_REASONS` (a metric label: a small, fixed set); the
``message`` is what the run's error says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from tidemark_ingest.launchers.k8s.manifest import CONTAINER, LABEL_RUN_ID

FailureReason = Literal["deadline_exceeded", "container_failed", "job_failed", "vanished",
                        "image_pull", "crash_loop", "container_config", "unschedulable"]
FAILURE_REASONS: tuple[FailureReason, ...] = ("deadline_exceeded", "container_failed", "job_failed", "vanished",
                                              "image_pull", "crash_loop", "container_config", "unschedulable")
STUCK_WAITING: dict[str, FailureReason] = {
    "ImagePullBackOff": "image_pull", "ErrImagePull": "image_pull", "InvalidImageName": "image_pull",
    "CrashLoopBackOff": "crash_loop",
    # A Secret or key the container's env refers to is missing: it waits until someone creates it.
    "CreateContainerConfigError": "container_config",
}


@dataclass(frozen=True)
class Ending:
    """How a worker's Job ended: ``code`` 0 when it succeeded (the worker reported the run itself)."""

    code: int
    message: str | None = None
    reason: FailureReason | None = None


def run_id_of(obj: dict[str, Any]) -> uuid.UUID | None:
    raw = (obj.get("metadata") or {}).get("labels", {}).get(LABEL_RUN_ID)
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def _true_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (job.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in conditions if c.get("status") == "True"}


def is_finished(job: dict[str, Any]) -> bool:
    conditions = _true_conditions(job)
    return "Complete" in conditions or "Failed" in conditions


def job_ending(job: dict[str, Any], pods: list[dict[str, Any]]) -> Ending | None:
    """None while the Job runs; else how it ended, the container's exit read from ``pods`` (the Job's)."""
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return Ending(code=0)
    failed = conditions.get("Failed")
    if failed is None:
        return None
    why = failed.get("reason") or "Failed"
    if why == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return Ending(code=1, reason="deadline_exceeded",
                      message=f"timeout: the worker's Job ran longer than its activeDeadlineSeconds ({deadline}s)")
    exit_ = container_exit(pods)
    if exit_ is not None:
        code, detail = exit_
        return Ending(code=code, reason="container_failed", message=f"worker container exited with code {code}{detail}")
    text = failed.get("message")
    return Ending(code=1, reason="job_failed", message=f"Kubernetes Job failed ({why}){': ' + text if text else ''}")


def container_exit(pods: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The worker container's exit code and `` (reason: message)`` from the first pod that has one."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == CONTAINER and terminated:
                parts = [p for p in (terminated.get("reason"), terminated.get("message")) if p]
                return int(terminated.get("exitCode", 1)), f" ({': '.join(parts)})" if parts else ""
    return None


def pod_stuck(pod: dict[str, Any]) -> tuple[FailureReason, str] | None:
    """Why ``pod`` cannot make progress without help (an image that cannot be pulled, a container
    restarting in a loop, no node to run on), or None."""
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = STUCK_WAITING.get(waiting.get("reason", ""))
        if reason is not None:
            text = waiting.get("message")
            return reason, f"{waiting['reason']}{': ' + text if text else ''}"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" \
                and condition.get("reason") == "Unschedulable":
            text = condition.get("message")
            return "unschedulable", f"Unschedulable{': ' + text if text else ''}"
    return None
