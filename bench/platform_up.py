"""The embedded platform as a user starts it (`tidemark up`), for the load benchmarks: start, stop,
and the resident memory of its process tree (the embedded process and every worker it spawned)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tidemark_testing.ports import free_port

PAGE = os.sysconf("SC_PAGE_SIZE")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


@dataclass
class Memory:
    """Peak resident memory of a process and of its whole tree, sampled every ``interval`` seconds."""

    pid: int
    interval: float = 0.2
    peak_main: int = 0
    peak_tree: int = 0
    peak_workers: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        tree = _children()
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(tree.get(pid, []))
        main = _rss(self.pid)
        total = main + sum(_rss(p) for p in pids[1:])
        self.peak_main = max(self.peak_main, main)
        self.peak_tree = max(self.peak_tree, total)
        # Workers are the tree's python children (the local broker is a child too, but not python).
        self.peak_workers = max(self.peak_workers, sum(1 for p in pids[1:] if _is_worker(p)))

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Memory:
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"tidemark_ingest.worker" in f.read()
    except OSError:
        return False


@dataclass
class Platform:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    home: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(env: dict[str, str] | None = None) -> Platform:
    """`tidemark up` on a free port with a fresh home (its own SQLite databases, broker and warehouse)."""
    home = Path(tempfile.mkdtemp(prefix="tidemark-bench-"))
    port = free_port()
    log = (home / "up.log").open("wb")
    argv = [sys.executable, "-c", "from tidemark_cli.main import cli; cli()", "up", "--port", str(port),
            "--home", str(home)]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise SystemExit(f"tidemark up exited: see {home / 'up.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and (home / "token").exists():
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"tidemark up did not become ready: see {home / 'up.log'}")
        time.sleep(0.5)
    return Platform(url, (home / "token").read_text().strip(), process, home)
