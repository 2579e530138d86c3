"""Start Tidemark services as real processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fixtures.egress import TEST_EGRESS_ALLOW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn(argv: list[str], name: str, port: int, env: dict[str, str], logs: Path) -> ServiceProcess:
    """Start the process without waiting for it (start several, then wait for each)."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_")}
    # A module-scoped platform starts before the per-test environment is set: the allow-list comes from here.
    full_env["TIDEMARK_EGRESS_ALLOW"] = TEST_EGRESS_ALLOW
    full_env.update(env)
    with log.open("wb") as handle:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, env=full_env, stdout=handle, stderr=subprocess.STDOUT)
    return ServiceProcess(name, port, log, proc)


def wait_healthy(service: ServiceProcess, health_path: str = "/healthz", timeout: float = 90) -> ServiceProcess:
    proc = service.proc
    name = service.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{service.log_tail()}")
        try:
            if httpx.get(service.url + health_path, timeout=1).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{name} did not answer {health_path} within {timeout}s:\n{service.log_tail()}")


def service_argv(service: str, port: int) -> list[str]:
    module = f"tidemark_{service}.main"
    code = f"import sys; from {module} import main; sys.argv[0] = 'tidemark-{service}-svc'; main()"
    return [sys.executable, "-c", code, "serve", "--migrate", "--host", "127.0.0.1", "--port", str(port)]
