"""CPU cost of ``fingerprint`` + ``band_keys`` per item, before and after the speed work, on a generated farm.

"Before" is the frozen original (tests/fingerprint_reference.py), "after" the live watcher.fingerprint, run
on the same items in alternating rounds so that load from other processes hits both alike. Times are CPU
time (``time.process_time``), best of the rounds; the first round of each also starts with cold caches,
as a freshly forked analysis worker does. Every item's bytes and keys are checked to be identical.

    python bench/bench_fingerprint.py                       # a 100-feed farm in a temporary directory
    python bench/bench_fingerprint.py --farm DIR --rounds 5 # an existing farm (bench/farm.py DIR)

"after + folded" passes ``folded_text=fold(text)`` as the analysis worker can, since it folds the body for
the search index anyway; the fold itself is not counted there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import farm as farmlib  # noqa: E402

from tests.fingerprint_reference import reference  # noqa: E402
from watcher.fingerprint import band_keys, fingerprint  # noqa: E402
from watcher.parse import parse_feed  # noqa: E402
from watcher.text import fold  # noqa: E402

KINDS = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

Job = Callable[[str, str, str], object]


def farm_items(farm: farmlib.Farm) -> list[tuple[str, str]]:
    """(title, text) of every item, as the parser hands them to the analysis workers."""
    out = []
    for spec in farm.feeds:
        body = farm.path(spec).read_bytes()
        headers = {"content-type": KINDS[spec.kind]}
        parsed = parse_feed(body, url=f"http://farm/{spec.filename}", headers=headers, now=NOW)
        out.extend((i.title, i.text) for i in parsed.items)
    return out


def _before(title: str, text: str, folded: str) -> object:
    return reference(title, text)


def _after(title: str, text: str, folded: str) -> object:
    fp = fingerprint(title, text)
    return fp.to_bytes(), band_keys(fp)


def _after_folded(title: str, text: str, folded: str) -> object:
    fp = fingerprint(title, text, folded_text=folded)
    return fp.to_bytes(), band_keys(fp)


def _run(job: Job, items: list[tuple[str, str, str]]) -> float:
    started = time.process_time()
    for title, text, folded in items:
        job(title, text, folded)
    return time.process_time() - started


def measure(items: list[tuple[str, str]], rounds: int) -> None:
    prepared = [(title, text, fold(text)) for title, text in items]
    for title, text, folded in prepared:
        if reference(title, text) != _after_folded(title, text, folded) or reference(title, text) != _after(
            title, text, folded
        ):
            raise SystemExit(f"different fingerprint for {title!r}")
    jobs = {"before": _before, "after": _after, "after + folded": _after_folded}
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            times[name].append(_run(job, prepared))
    n = len(items)
    best_before = min(times["before"]) / n * 1e6
    print(f"{n} items, {rounds} rounds, CPU us/item (best / median):")
    for name, ts in times.items():
        best = min(ts) / n * 1e6
        median = sorted(ts)[len(ts) // 2] / n * 1e6
        print(f"  {name:15s} {best:7.1f} / {median:7.1f}   {best_before / best:4.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--farm", type=Path, help="an existing farm directory (default: generate one)")
    ap.add_argument("--feeds", type=int, default=100, help="feeds in the generated farm (default 100)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.farm:
        items = farm_items(farmlib.load(args.farm))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-fingerprint-") as d:
            items = farm_items(farmlib.generate(Path(d), args.feeds, seed=1, base=NOW))
    measure(items, args.rounds)


if __name__ == "__main__":
    main()
