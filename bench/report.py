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
    import connectorx
    import pyarrow
    import pyiceberg

    found = {"Python": platform.python_version(), "pyarrow": pyarrow.__version__,
             "pyiceberg": pyiceberg.__version__, "adbc-driver-postgresql": adbc_driver_postgresql.__version__,
             "connectorx (Tidemark's MySQL reader)": connectorx.__version__}
    server = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-U", "postgres", "-c", "SHOW server_version"],
                            capture_output=True, text=True, check=False).stdout.strip()
    found["PostgreSQL"] = server or "unknown"
    maria = subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT VERSION()"],
                           capture_output=True, text=True, check=False).stdout.strip()
    found["MariaDB"] = maria or "unknown"
    if dlt_python is not None:
        code = "import dlt, connectorx; print(dlt.__version__, connectorx.__version__)"
        out = subprocess.run([str(dlt_python), "-c", code], capture_output=True, text=True, check=False).stdout.split()
        if len(out) == 2:
            found["dlt"], found["connectorx (dlt's)"] = out
    return found


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def write(root: Path, rows: int, results: list[Any], dlt_python: Path | None) -> Path:
    """Rewrite docs/benchmarks.md (and its plot) from ``results`` (run.ShapeResult, one per shape)."""
    from run import CEILING_TARGET, CHANGED_TARGET, DLT_TARGET, RSS_TARGET_MB

    docs = root / "docs"
    shapes = ",".join(r.shape for r in results)
    if dlt_python is not None:
        bars = [{"label": f"{m.name} [{r.shape}]", "rows_per_s": m.rows_per_s, "rss_mb": m.rss_mb}
                for r in results for m in (r.ceiling, r.full, r.first_incremental, *r.dlt.values())]
        title = f"SQL → lakehouse, {rows:,} rows per table, {os.cpu_count()} cores (databases on the same cores)"
        subprocess.run([str(dlt_python), str(root / "bench" / "plot.py"),
                        json.dumps({"out": str(docs / PLOT), "bars": bars, "title": title})], check=True)
    versions = _versions(dlt_python)
    load = os.getloadavg()
    lines = [
        "# Benchmarks",
        "",
        "`make bench` (see `bench/`) loads tables of several shapes from PostgreSQL and one from MariaDB with",
        "Tidemark and with dlt, and measures each server's own bulk export as the ceiling. This page is",
        "rewritten by every run; the results per shape are from the last one, and everything from \"How it is",
        "measured\" on is `bench/NOTES.md` (edit that file: the other benchmarks' sections live there too).",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {_memory_gb():.0f} GB RAM; the databases run on the same "
        f"cores; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
        + (" — **measured under load** (other jobs shared the machine): ratios are indicative only"
           # The bench's own processes (a server backend and three threads) keep the load near 2-2.5.
           if load[1] > 1.5 * (os.cpu_count() or 1) else ""),
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- command: `BENCH_ROWS={rows} BENCH_SHAPES={shapes} make bench`",
        "",
        "## Results per source and shape",
        "",
    ]
    for r in results:
        lines += [f"### {r.shape} ({'MariaDB' if r.source == 'mysql' else 'PostgreSQL'})", "", r.what, "",
                  "| what | seconds | rows/s | peak RSS |", "|---|---:|---:|---:|"]
        for m in [r.ceiling, r.full, r.first_incremental, *r.dlt.values(),
                  *(m for m in (r.read_alone, r.reader_floor, r.changed, r.noop) if m is not None)]:
            rss = f"{m.rss_mb:.0f} MB" if m.rss_mb is not None else "-"
            lines.append(f"| {m.name} | {m.seconds:.2f} | {m.rows_per_s:,.0f} | {rss} |")
        lines += ["", "| target | measured | met |", "|---|---:|:-:|",
                  f"| Full Refresh ≥ {CEILING_TARGET} x ceiling | {r.ceiling_ratio:.2f} x | "
                  f"{_yes(r.ceiling_ratio >= CEILING_TARGET)} |"]
        if r.dlt_failed:
            lines.append(f"| dlt | failed with {', '.join(r.dlt_failed)} (see the bench's output) | - |")
        if r.dlt_ratio is not None:
            lines.append(f"| Full Refresh ≥ {DLT_TARGET} x dlt's best | {r.dlt_ratio:.2f} x | "
                         f"{_yes(r.dlt_ratio >= DLT_TARGET)} |")
        lines.append(f"| first incremental run as fast as Full Refresh (time ratio ≤ 1.1) | "
                     f"{r.first_run_ratio:.2f} | {_yes(r.first_run_ratio <= 1.1)} |")
        lines.append(f"| peak RSS ≤ {RSS_TARGET_MB} MB | {r.peak_rss_mb:.0f} MB | "
                     f"{_yes(r.peak_rss_mb <= RSS_TARGET_MB)} |")
        if r.read_alone is not None:
            lines.append(f"| (no target) the read alone, nothing written, x ceiling: the most a load could reach | "
                         f"{r.ceiling.seconds / r.read_alone.seconds:.2f} x | - |")
        if r.reader_floor is not None and r.dlt:
            best = min(m.seconds for m in r.dlt.values())
            lines.append(f"| (no target) dlt's best load time / {DLT_TARGET} against the reader's floor: below it, "
                         f"no load through this reader reaches {DLT_TARGET} x dlt | {best / DLT_TARGET:.2f} s vs "
                         f"{r.reader_floor.seconds:.2f} s | - |")
        if r.changed is not None:
            share = r.changed.seconds / r.full.seconds
            lines.append(f"| incremental, 1% changed uniformly ≤ {CHANGED_TARGET:.0%} of Full Refresh time | "
                         f"{share:.1%} | {_yes(share <= CHANGED_TARGET)} |")
        if r.noop_committed is not None:
            lines.append(f"| incremental with nothing changed commits nothing | "
                         f"{'a snapshot' if r.noop_committed else 'no snapshot'} | {_yes(not r.noop_committed)} |")
        lines.append("")
    lines += [f"![rows per second and peak memory]({PLOT})", ""]
    notes = (root / "bench" / "NOTES.md")
    if notes.exists():
        lines.append(notes.read_text().strip())
        lines.append("")
    path = docs / "benchmarks.md"
    path.write_text("\n".join(lines))
    return path
