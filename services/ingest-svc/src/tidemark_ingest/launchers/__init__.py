"""Launchers behind one interface: ``local`` (a subprocess per run) and ``kubernetes`` (a Job per run)."""

from __future__ import annotations

from tidemark_ingest.launchers.base import ExitCallback, Launcher
from tidemark_ingest.launchers.local import LocalLauncher
from tidemark_ingest.launchers.spec import SecretRef, WorkerSpec, worker_spec
from tidemark_ingest.settings import IngestSettings


def create_launcher(settings: IngestSettings, on_exit: ExitCallback) -> Launcher:
    if settings.launcher == "local":
        return LocalLauncher(settings, on_exit, stop_grace_seconds=settings.stop_grace_seconds)
    if settings.launcher == "kubernetes":
        # Imported here: the local launcher (embedded mode) never loads the Kubernetes client.
        from tidemark_ingest.launchers.kubernetes import KubernetesLauncher

        return KubernetesLauncher(settings, on_exit)
    raise ValueError(f"unknown launcher {settings.launcher!r}")  # pragma: no cover - Literal guards it


__all__ = ["ExitCallback", "Launcher", "LocalLauncher", "SecretRef", "WorkerSpec", "create_launcher", "worker_spec"]
