"""Draw bench_cycle.py's results: wall time per tool and cycle, one panel per farm size, log scale.

Run by bench_cycle.py with whichever Python has matplotlib (its own, or a private virtualenv's).

    python bench/plot_cycle.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CYCLES = ("cold", "warm", "mutated")


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    results = data["results"]
    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5.5), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        names = list(res["peers"])
        width = 0.8 / len(CYCLES)
        for i, cycle in enumerate(CYCLES):
            values = [res["peers"][n][cycle]["wall"] for n in names]
            xs = [j + (i - 1) * width for j in range(len(names))]
            ax.bar(xs, values, width, label=cycle)
        floor = res.get("floors", {}).get("fastfeedparser", {}).get("wall")
        if floor:
            ax.axhline(floor, color="black", linestyle="--", linewidth=1, label="fastfeedparser parse floor")
        fp = res.get("floors", {}).get("feedparser", {}).get("wall")
        if fp:
            ax.axhline(fp, color="grey", linestyle=":", linewidth=1, label="feedparser parse floor")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace(" ", "\n", 1).replace(", ", ",\n") for n in names], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("wall time, s (log)")
        ax.set_title(
            f"N = {res['feeds']} feeds, {res['items']:,} items ({res['changed_percent']:g} % changed)"
        )
        ax.legend(fontsize=8)
    meta = data.get("meta", {})
    fig.suptitle(f"One poll cycle on a local nginx feed farm ({meta.get('cpus', '?')} CPUs, median of "
                 f"{meta.get('repeat', '?')})")  # fmt: skip
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
