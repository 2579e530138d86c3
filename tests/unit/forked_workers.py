"""Stand-ins for the worker's body, forked by the local launcher's fork server in tests.

Module-level functions, so the fork server's children can import them by name. Each writes what it
saw (its pid, its parent, its environment) to ``<TIDEMARK_HOME>/<run id>.json`` before it acts, so a
test knows it began."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _report(env: dict[str, str], args: list[str]) -> None:
    path = Path(env["TIDEMARK_HOME"]) / f"{args[-1]}.json"
    seen = {"pid": os.getpid(), "ppid": os.getppid(), "env": dict(os.environ)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(seen))
    tmp.rename(path)


def sleeper(env: dict[str, str], args: list[str]) -> None:
    _report(env, args)
    time.sleep(120)


def stubborn(env: dict[str, str], args: list[str]) -> None:
    """Stuck in something that does not look at the stop flag: ignores SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _report(env, args)
    time.sleep(120)


def exits_3(env: dict[str, str], args: list[str]) -> None:
    _report(env, args)
    sys.exit(3)


def crashes(env: dict[str, str], args: list[str]) -> None:
    """Dies as a segfaulting driver or the OOM killer would leave it: by a signal, no clean-up."""
    _report(env, args)
    os.kill(os.getpid(), signal.SIGKILL)
