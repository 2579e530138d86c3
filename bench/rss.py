"""The bench jobs' one measure of their own memory (no imports, so dlt's separate virtualenv can use it too)."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB: wait4's ru_maxrss would count the parent's memory,
    which a child starts as a copy of."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1.0
