"""The warm poll cycle: `watcher --config CFG poll` when every feed answers 304 Not Modified.

A small farm is generated in a temporary directory and served by nginx (bench/farmserver.py); one cold poll
fills the database, then each warm poll is a fresh `python -m watcher poll` process, as cron would run it.
Prints the median wall time and the median CPU time (user + system, the process and its workers) of the warm
polls: on a shared machine the CPU time is the steadier figure.

    python bench/bench_warm.py [--feeds 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import farm as farmmod  # noqa: E402
import farmserver  # noqa: E402
from peers import WatcherPeer  # noqa: E402

POLL_TIMEOUT = 300.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_poll(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, the summary line) of one poll process."""
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=POLL_TIMEOUT, check=True)
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    return wall, cpu, done.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200, help="feeds in the generated farm")
    ap.add_argument("--runs", type=int, default=7, help="warm polls to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as another user: they must reach the farm's files
        farm = farmmod.generate(root / "farm", args.feeds)
        with farmserver.serve(farm.root) as (base, server):
            peer = WatcherPeer()
            (root / "watcher").mkdir()
            peer.prepare(farm.urls(base), root / "watcher")
            cmd, extra = peer.command()
            env = {**os.environ, **extra}
            wall, cpu, summary = run_poll(cmd, env)
            print(f"{args.feeds} feeds served by {server}; cold poll: {wall:.2f} s wall, {cpu:.2f} s CPU")
            print(f"  {summary}")
            walls, cpus = [], []
            for _ in range(args.runs):
                wall, cpu, summary = run_poll(cmd, env)
                if "0 new items" not in summary or " 0 failed" not in summary:
                    raise SystemExit(f"a warm poll did not find every feed unchanged: {summary}")
                walls.append(wall)
                cpus.append(cpu)
            print(
                f"warm poll, {args.runs} runs: median {statistics.median(walls):.3f} s wall "
                f"(best {min(walls):.3f}), median {statistics.median(cpus):.3f} s CPU (best {min(cpus):.3f})"
            )


if __name__ == "__main__":
    main()
