"""Wall time and peak memory of one `watcher poll` over the hostile mix of tests/test_hostile_mix.py.

    python bench/bench_hostile.py [--timeout 3] [--runs 1]

The mix is 32 hostile feeds (trickle, hang, late headers, endless body, oversize bodies, gzip and brotli
bombs, stacked encodings, redirect loop / chain / to private addresses, 404, 410, 500, 429, an HTML page,
non-HTTP bytes, garbage, refused, TLS and DNS failures, and content attacks: invalid UTF-8, a lying
charset, NUL bytes, a 1 MB title, 5,000 items, billion laughs, XXE, scripts) and 20 healthy ones, served by
four local servers in this process. The poll runs as a child process, exactly as a user runs it, so its
peak RSS (getrusage of the children) is the poll's alone, not the servers'. Targets: wall time within the
fetch deadline plus a small margin; peak RSS under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import test_hostile_mix as mix_module  # noqa: E402
from tests.feedserver import FeedServer  # noqa: E402

RSS_TARGET_MB = 200


def watcher(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(cfg), *args],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def measured_poll(cfg: Path, workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `watcher poll` child, from wait4: this child's own figures."""
    with open(workdir / "poll.out", "wb") as out, open(workdir / "poll.err", "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(cfg), "poll"], stdout=out, stderr=err, cwd=REPO
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"poll failed ({proc.returncode}):\n{(workdir / 'poll.err').read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def one_run(timeout: float) -> tuple[float, float, float, float, list[dict[str, object]], int]:
    mix_module.FETCH_TIMEOUT = timeout
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        servers = [stack.enter_context(FeedServer()) for _ in range(mix_module.HOSTS)]
        mix = mix_module.hostile_mix(servers)
        d = Path(tmp)
        healthy = [(c, url) for c, url in mix if not c.hostile][:1]
        (d / "base").mkdir()
        base_cfg = mix_module.write_config(
            d / "base" / "watcher.toml", d / "base" / "w.db", healthy, d / "b.txt"
        )
        baseline, base_peak = measured_poll(base_cfg, d / "base")
        cfg = mix_module.write_config(d / "watcher.toml", d / "w.db", mix, d / "digests.txt")
        wall, peak = measured_poll(cfg, d)
        feeds = [json.loads(line) for line in watcher(cfg, "feeds", "--format", "json").stdout.splitlines()]
        names = {url: c.name for c, url in mix}
        for f in feeds:
            f["case"] = names[str(f["url"])]
        hostile = sum(c.hostile for c, _ in mix)
        return wall, baseline, peak, base_peak, feeds, hostile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=3.0, help="fetch_timeout in seconds (default 3)")
    ap.add_argument(
        "--runs", type=int, default=1, help="repeat the poll this many times (fresh database each)"
    )
    args = ap.parse_args()
    walls = []
    for run in range(args.runs):
        wall, baseline, peak, base_peak, feeds, hostile = one_run(args.timeout)
        walls.append(wall)
        if run == 0:
            print(f"{'feed':28} {'status':12} {'items':>5}  error")
            for f in feeds:
                print(f"{f['case']!s:28} {f['status']!s:12} {f['items']!s:>5}  {f['last_error'] or ''}")
            print()
        healthy_ok = sum(f["status"] == "ok" and str(f["case"]).startswith("healthy") for f in feeds)
        print(
            f"run {run + 1}: {hostile} hostile + {len(feeds) - hostile} healthy feeds, fetch_timeout {args.timeout:g}s: "
            f"wall {wall:.2f}s (deadline + {wall - args.timeout:.2f}s; a poll of one healthy feed takes "
            f"{baseline:.2f}s, mostly start-up), peak RSS {peak:.0f} MB (one healthy feed: {base_peak:.0f} MB) "
            f"(target < {RSS_TARGET_MB} MB), healthy feeds ok: {healthy_ok}/{len(feeds) - hostile}"
        )
    if args.runs > 1:
        print(f"wall: min {min(walls):.2f}s, max {max(walls):.2f}s")


if __name__ == "__main__":
    main()
