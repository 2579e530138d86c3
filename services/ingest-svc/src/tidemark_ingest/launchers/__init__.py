"""Launchers behind one interface: ``local`` (subprocess) today, ``kubernetes`` (a Job per run) next."""

from __future__ import annotations

from tidemark_ingest.launchers.base import ExitCallback, Launcher
from tidemark_ingest.launchers.local import LocalLauncher
from tidemark_ingest.launchers.spec import SecretRef, WorkerSpec, worker_spec
from tidemark_ingest.settings import IngestSettings


def create_launcher(settings: IngestSettings, on_exit: ExitCallback) -> Launcher:
    if settings.launcher == "local":
        return LocalLauncher(settings, on_exit, stop_grace_seconds=settings.stop_grace_seconds)
    raise ValueError(f"unknown launcher {settings.launcher!r}")  # pragma: no cover - Literal guards it


__all__ = ["ExitCallback", "Launcher", "LocalLauncher", "SecretRef", "WorkerSpec", "create_launcher", "worker_spec"]
