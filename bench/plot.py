"""Draw docs/benchmarks.png; runs in the dlt virtualenv, which has matplotlib (the product does not).

Argument: a JSON object with ``out`` and ``bars`` (label, rows/s, peak RSS in MB or null).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    args = json.loads(sys.argv[1])
    bars = args["bars"]
    labels = [b["label"] for b in bars]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, max(4.0, 0.3 * len(bars))),
                                        gridspec_kw={"width_ratios": [3, 2]})
    colors = ["#9e9e9e" if "ceiling" in lbl else "#1f77b4" if lbl.startswith("Tidemark") else "#ff7f0e"
              for lbl in labels]
    speed.barh(labels, [b["rows_per_s"] / 1000 for b in bars], color=colors)
    speed.invert_yaxis()
    speed.set_xlabel("thousand rows per second (higher is better)")
    for i, b in enumerate(bars):
        speed.text(b["rows_per_s"] / 1000, i, f" {b['rows_per_s'] / 1000:,.0f}k", va="center", fontsize=8)
    # Same rows as the speed panel; the ceiling has no pipeline, so no memory bar.
    rows = range(len(bars))
    memory.barh(rows, [b["rss_mb"] or 0 for b in bars], color=colors)
    for i, b in enumerate(bars):
        memory.text(b["rss_mb"] or 0, i, f" {b['rss_mb']:.0f}" if b["rss_mb"] is not None else " n/a",
                    va="center", fontsize=8)
    memory.set_yticks(list(rows))
    memory.set_yticklabels([])
    memory.invert_yaxis()
    memory.axvline(400, color="red", linestyle="--", linewidth=1)
    memory.set_xlabel("peak RSS, MB (red line: 400 MB target)")
    fig.suptitle(args["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(args["out"], dpi=110)


if __name__ == "__main__":
    main()
