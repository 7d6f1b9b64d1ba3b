"""A whole poll cycle, Watcher against the tools a desk would otherwise use, on one nginx-served feed farm.

For each farm size N (bench/farm.py: RSS and Atom, 30-60 items, 20-120 KB, English and Serbian in both
scripts), this measures, each ``--repeat`` times and reports the median of:

1. the parse floors over the farm's files in one process, no network (bench/bench_parse.py):
   feedparser, fastfeedparser, and Watcher's own parse_feed;
2. every peer's cold cycle (empty state, every feed new), warm cycle (nothing changed: all 304) and the
   cycle after ``mutate`` changed 10 % of the feeds: Watcher (`watcher poll`, 20 topics), newsboat
   (``-x reload`` with 8 and 32 reload threads), rss2email (``run --no-send``), feed2exec (null output) and a
   sequential httpx + feedparser loop with conditional GET (bench/loop_peer.py);
3. wall time, CPU time (user + sys of the child's process tree, from wait4), peak RSS (the larger of the
   biggest process and the sampled sum over the tree), feeds/s, items/s; ratios to the fastfeedparser floor
   and Watcher's time divided by each peer's; bytes per item of Watcher's database.

Output: a markdown table on stdout, a JSON file with every run, and a PNG plot (docs/bench-cycle.png by
default; skipped with a message when matplotlib cannot be had). Peers are installed on first use (newsboat
and nginx from Debian when running as root, rss2email and feed2exec into private virtualenvs under the cache
directory); a peer that cannot be installed is skipped with its reason.

    python bench/bench_cycle.py                         # N = 500 and 2000, 3 repeats, every peer
    python bench/bench_cycle.py --quick                 # N = 200, 1 repeat: a smoke run
    python bench/bench_cycle.py --sizes 500 --repeat 1 --peers watcher,rss2email
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import farm as farmlib
import farmserver
import peers as peerlib

REPO = Path(__file__).resolve().parent.parent
PEER_NAMES = ("watcher", "loop", "newsboat8", "newsboat32", "rss2email", "feed2exec")
CYCLES = ("cold", "warm", "mutated")
FLOORS = ("feedparser", "fastfeedparser", "watcher")
TARGETS = "cold <= 3 x fastfeedparser floor; warm <= 0.5 x rss2email; 10 % <= 0.3 x rss2email; RSS < 150 MB"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "watcher-bench"


def make_peer(name: str, venvs: Path) -> peerlib.Peer:
    if name == "watcher":
        return peerlib.WatcherPeer()
    if name == "loop":
        return peerlib.LoopPeer()
    if name.startswith("newsboat"):
        return peerlib.NewsboatPeer(int(name.removeprefix("newsboat") or 8))
    if name == "rss2email":
        return peerlib.Rss2EmailPeer(venvs)
    if name == "feed2exec":
        return peerlib.Feed2ExecPeer(venvs)
    raise SystemExit(f"unknown peer {name!r}; choose from {', '.join(PEER_NAMES)}")


def median_run(runs: list[peerlib.Run], items: list[int], feeds: int) -> dict[str, Any]:
    wall = statistics.median(r.wall for r in runs)
    return {
        "wall": wall,
        "cpu": statistics.median(r.cpu for r in runs),
        "rss_mb": max(r.rss_mb for r in runs),
        "feeds_per_s": feeds / wall if wall else None,
        "items": statistics.median(items),
        "items_per_s": statistics.median(items) / wall if wall and any(items) else None,
        "runs": [{"wall": r.wall, "cpu": r.cpu, "rss_mb": r.rss_mb, "status": r.status} for r in runs],
        "failed": [r.output[-600:] for r in runs if r.status != 0],
    }


def measure_floors(farm: farmlib.Farm, repeat: int, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    script = Path(__file__).resolve().parent / "bench_parse.py"
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        for parser in FLOORS:
            runs, seconds, items = [], [], 0
            for _ in range(repeat):
                cmd = [sys.executable, str(script), str(farm.root), "--parser", parser, "--json"]
                run = peerlib.measure(cmd, cwd=Path(tmp), env={"PYTHONPATH": str(REPO)}, timeout=timeout)
                runs.append(run)
                if run.status == 0:
                    result = json.loads(run.output.strip().splitlines()[-1])
                    seconds.append(result["seconds"])
                    items = result["items"]
            if not seconds:
                out[parser] = {"skipped": f"failed: {runs[-1].output[-300:]}"}
                continue
            sec = statistics.median(seconds)
            out[parser] = {
                "wall": sec, "cpu": statistics.median(r.cpu for r in runs), "rss_mb": max(r.rss_mb for r in runs),
                "items": items, "items_per_s": items / sec, "feeds_per_s": len(farm.feeds) / sec,
                "process_wall": statistics.median(r.wall for r in runs),
            }  # fmt: skip
            print(f"  floor {parser:15} {sec:8.2f}s  {items / sec:10,.0f} items/s", flush=True)
    return out


def measure_peer(
    peer: peerlib.Peer, farm: farmlib.Farm, urls: list[str], work: Path, repeat: int, mutate: float,
    timeout: float,
) -> dict[str, Any]:  # fmt: skip
    peer.prepare(urls, work)
    runs: dict[str, list[peerlib.Run]] = {c: [] for c in CYCLES}
    items: dict[str, list[int]] = {c: [] for c in CYCLES}
    db_bytes: list[int] = []
    for _ in range(repeat):
        peer.reset()
        runs["cold"].append(peer.run(timeout))
        items["cold"].append(farm.items())
        if isinstance(peer, peerlib.WatcherPeer):
            db_bytes.append(peer.db_bytes())
        runs["warm"].append(peer.run(timeout))
        items["warm"].append(0)
        before = {f.number: f.start for f in farm.feeds}
        changed = farmlib.mutate(farm, mutate, cycle=1 + max(f.version for f in farm.feeds))
        items["mutated"].append(sum(f.start - before[f.number] for f in changed))
        runs["mutated"].append(peer.run(timeout))
        summary = "  ".join(f"{c} {runs[c][-1].wall:7.2f}s" for c in CYCLES)
        print(f"  {peer.name:32} {summary}", flush=True)
    result: dict[str, Any] = {c: median_run(runs[c], items[c], len(farm.feeds)) for c in CYCLES}
    if db_bytes:
        result["db_bytes"] = statistics.median(db_bytes)
        result["db_bytes_per_item"] = statistics.median(db_bytes) / farm.items()
    return result


def bench_size(n: int, args: argparse.Namespace, venvs: Path) -> dict[str, Any]:
    root = args.workdir / f"farm-{n}"
    print(f"\n== N = {n}: generating the farm in {root} ...", flush=True)
    farm = farmlib.generate(root, n, seed=args.seed)
    total, small, large = farmlib.sizes(farm)
    print(
        f"   {n} feeds, {farm.items()} items, {total / 1e6:.0f} MB (files {small // 1000}-{large // 1000} KB)"
    )
    result: dict[str, Any] = {
        "feeds": n, "items": farm.items(), "bytes": total, "changed_percent": args.mutate, "peers": {},
        "skipped": {},
    }  # fmt: skip
    if "floors" not in args.skip:
        result["floors"] = measure_floors(farm, args.repeat, args.timeout)
    with farmserver.serve(farm.root) as (base_url, server):
        result["server"] = server
        urls = farm.urls(base_url)
        for name in args.peers:
            peer = make_peer(name, venvs)
            if peer.skip:
                print(f"  skipping {peer.name}: {peer.skip}", flush=True)
                result["skipped"][peer.name] = peer.skip
                continue
            try:
                work = args.workdir / f"run-{n}" / name
                result["peers"][peer.name] = measure_peer(
                    peer, farm, urls, work, args.repeat, args.mutate, args.timeout
                )
            except (OSError, subprocess.SubprocessError) as e:  # a peer never fails the benchmark
                print(f"  skipping {peer.name}: {type(e).__name__}: {e}", flush=True)
                result["skipped"][peer.name] = f"{type(e).__name__}: {e}"
    return result


# --- reporting --------------------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def table(result: dict[str, Any]) -> str:
    n, floors = result["feeds"], result.get("floors", {})
    ffp = floors.get("fastfeedparser", {}).get("wall")
    w = result["peers"].get("watcher")
    lines = [
        f"### N = {n} feeds, {result['items']:,} items, {result['bytes'] / 1e6:.0f} MB "
        f"(server: {result.get('server', '?')}, {result['changed_percent']:g} % changed in the third cycle)",
        "",
        "| | cycle | wall s | CPU s | peak RSS MB | feeds/s | items/s | × ffp floor | Watcher ÷ this |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in FLOORS:
        fl = floors.get(name)
        if fl and "wall" in fl:
            lines.append(
                f"| parse floor: {name} | files | {fl['wall']:.2f} | {fl['cpu']:.2f} | {fl['rss_mb']:.0f} | "
                f"{fl['feeds_per_s']:,.0f} | {fl['items_per_s']:,.0f} | {_f(fl['wall'] / ffp if ffp else None)} | |"
            )
    for peer, res in result["peers"].items():
        for c in CYCLES:
            r = res[c]
            ratio = w[c]["wall"] / r["wall"] if w and r["wall"] else None
            lines.append(
                f"| {peer} | {c} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss_mb']:.0f} | "
                f"{_f(r['feeds_per_s'], '{:,.0f}')} | {_f(r['items_per_s'], '{:,.0f}')} | "
                f"{_f(r['wall'] / ffp if ffp else None)} | {'' if peer == 'watcher' else _f(ratio)} |"
            )
    for peer, why in result["skipped"].items():
        lines.append(f"| {peer} | skipped: {why} | | | | | | | |")
    if w and "db_bytes_per_item" in w:
        lines += ["", f"Watcher's database after the cold cycle: {w['db_bytes'] / 1e6:.1f} MB, "
                      f"{w['db_bytes_per_item']:,.0f} bytes per item."]  # fmt: skip
    lines += ["", *targets(result)]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[str]:
    w = result["peers"].get("watcher")
    if not w:
        return []
    out = [f"Targets ({TARGETS}):"]
    ffp = result.get("floors", {}).get("fastfeedparser", {}).get("wall")
    r2e = result["peers"].get("rss2email run --no-send")

    def verdict(value: float, limit: float) -> str:
        return f"{value:.2f} ({'met' if value <= limit else 'MISSED'}, limit {limit:g})"

    if ffp:
        out.append(f"- cold ÷ fastfeedparser floor: {verdict(w['cold']['wall'] / ffp, 3)}")
    if r2e:
        out.append(f"- warm ÷ rss2email warm: {verdict(w['warm']['wall'] / r2e['warm']['wall'], 0.5)}")
        out.append(f"- 10 % ÷ rss2email 10 %: {verdict(w['mutated']['wall'] / r2e['mutated']['wall'], 0.3)}")
    out.append(f"- peak RSS MB: {verdict(max(w[c]['rss_mb'] for c in CYCLES), 150)}")
    # "proportional to the changed feeds, not to N": what the changed feeds add to an unchanged cycle, per
    # changed feed, compared across sizes by the reader (the same figure at N = 500 and 2,000)
    changed = round(result["feeds"] * result["changed_percent"] / 100)
    if changed:
        extra = w["mutated"]["wall"] - w["warm"]["wall"]
        out.append(f"- 10 % cycle minus warm cycle, per changed feed: {1000 * extra / changed:.1f} ms "
                   f"({changed} changed feeds)")  # fmt: skip
    return out


def plot(results: list[dict[str, Any]], json_path: Path, png: Path, venvs: Path) -> None:
    script = Path(__file__).resolve().parent / "plot_cycle.py"
    try:
        import matplotlib  # noqa: F401

        python = sys.executable
    except ImportError:
        python_path, skip = peerlib._venv_tool(venvs, "matplotlib", "python")
        if python_path is None:
            print(f"no plot: {skip}")
            return
        python = python_path
    done = subprocess.run([python, str(script), str(json_path), str(png)], capture_output=True, text=True)
    print(f"plot: {png}" if done.returncode == 0 else f"no plot: {done.stderr.strip()[-300:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000", help="comma-separated farm sizes (default 500,2000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--peers", default=",".join(PEER_NAMES), help=f"comma-separated: {', '.join(PEER_NAMES)}")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: floors")
    ap.add_argument("--quick", action="store_true", help="N = 200, one repeat")
    ap.add_argument(
        "--mutate", type=float, default=10.0, help="percentage of feeds changed for the 3rd cycle"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before one run is killed")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "watcher-bench")
    ap.add_argument("--json", type=Path, help="results file (default: WORKDIR/bench-cycle.json)")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "bench-cycle.png")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeat = "200", 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.peers = [p for p in args.peers.split(",") if p]
    args.skip = {s for s in args.skip.split(",") if s}
    args.workdir.mkdir(parents=True, exist_ok=True)
    venvs = cache_dir() / "venvs"
    started = time.monotonic()
    results = [bench_size(n, args, venvs) for n in sizes]
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "repeat": args.repeat,
            "elapsed": time.monotonic() - started}  # fmt: skip
    json_path = args.json or args.workdir / "bench-cycle.json"
    json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print()
    for r in results:
        print(table(r))
        print()
    print(f"results: {json_path}")
    plot(results, json_path, args.plot, venvs)


if __name__ == "__main__":
    main()
