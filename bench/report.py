"""docs/benchmarks.md and its plot, from one run's measurements."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PLOT = "benchmarks.png"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _versions(dlt_python: Path | None) -> dict[str, str]:
    import adbc_driver_postgresql
    import pyarrow
    import pyiceberg

    found = {"Python": platform.python_version(), "pyarrow": pyarrow.__version__,
             "pyiceberg": pyiceberg.__version__, "adbc-driver-postgresql": adbc_driver_postgresql.__version__}
    server = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-U", "postgres", "-c", "SHOW server_version"],
                            capture_output=True, text=True, check=False).stdout.strip()
    found["PostgreSQL"] = server or "unknown"
    if dlt_python is not None:
        code = "import dlt, connectorx; print(dlt.__version__, connectorx.__version__)"
        out = subprocess.run([str(dlt_python), "-c", code], capture_output=True, text=True, check=False).stdout.split()
        if len(out) == 2:
            found["dlt"], found["connectorx"] = out
    return found


def write(root: Path, rows: int, results: dict[str, Any], incremental: dict[str, Any],
          dlt_python: Path | None) -> Path:
    docs = root / "docs"
    ceiling, full = results["ceiling"], results["full_refresh"]
    dlt_best = max((m.rows_per_s for k, m in results.items() if k.startswith("dlt_")), default=0.0)
    measured = [*results.values(), *incremental.values()]
    if dlt_python is not None:
        bars = [{"label": m.name, "rows_per_s": m.rows_per_s, "rss_mb": m.rss_mb} for m in results.values()]
        title = f"PostgreSQL → lakehouse, {rows:,} rows, {os.cpu_count()} cores (PostgreSQL on the same cores)"
        subprocess.run([str(dlt_python), str(root / "bench" / "plot.py"),
                        json.dumps({"out": str(docs / PLOT), "bars": bars, "title": title})], check=True)
    versions = _versions(dlt_python)
    lines = [
        "# Benchmarks",
        "",
        "`make bench` (see `bench/`) loads one PostgreSQL table with Tidemark and with dlt, and measures the",
        "server's own binary COPY as the ceiling. This page is rewritten by every run; the numbers below are",
        "from the last one.",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {_memory_gb():.0f} GB RAM; PostgreSQL runs on the same cores",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- command: `BENCH_ROWS={rows} make bench`",
        "",
        "## Results",
        "",
        "| what | seconds | rows/s | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    for m in measured:
        rss = f"{m.rss_mb:.0f} MB" if m.rss_mb is not None else "-"
        lines.append(f"| {m.name} | {m.seconds:.2f} | {m.rows_per_s:,.0f} | {rss} |")
    ratio = full.rows_per_s / ceiling.rows_per_s
    lines += ["", "| target | measured | met |", "|---|---:|:-:|"]
    lines.append(f"| Full Refresh ≥ 0.7 x ceiling | {ratio:.2f} x | {'yes' if ratio >= 0.7 else 'no'} |")
    if dlt_best:
        vs = full.rows_per_s / dlt_best
        lines.append(f"| Full Refresh ≥ 1.2 x dlt's best | {vs:.2f} x | {'yes' if vs >= 1.2 else 'no'} |")
    lines.append(f"| peak RSS ≤ 400 MB | {full.rss_mb:.0f} MB | {'yes' if full.rss_mb <= 400 else 'no'} |")
    for name, m in incremental.items():
        share = m.seconds / full.seconds
        lines.append(f"| Incremental 1% ({name}) ≤ 10% of Full Refresh time | {share:.1%} | "
                     f"{'yes' if share <= 0.1 else 'no'} |")
    lines += ["", f"![rows per second and peak memory]({PLOT})", ""]
    notes = (root / "bench" / "NOTES.md")
    if notes.exists():
        lines.append(notes.read_text().strip())
        lines.append("")
    path = docs / "benchmarks.md"
    path.write_text("\n".join(lines))
    return path
