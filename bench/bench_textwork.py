"""Per-item text work of the parse stage: ``plain_text``, ``absolute_link`` and ``canonical_url``, before and
after their speed-up, over the exact calls a farm makes.

Every file of the farm is parsed once with ``parse_feed`` (and ``item_keys`` per item) while the three
functions are wrapped to record their arguments; then each function is timed over those recorded calls, the
frozen pre-speed-up copy (tests/textwork_reference.py) against the live one, best of ``--repeat`` passes of
CPU time (``time.process_time``: the machine is shared, wall time is noise). The whole ``parse_feed`` +
``item_keys`` per item is timed the same way, once with the frozen copies patched in. Each function's outputs
are compared before it is timed, so a figure for code that changed behaviour is never printed.

    python bench/bench_textwork.py FARM_DIR                # FARM_DIR/feeds/*.rss|*.atom
    python bench/bench_textwork.py FARM_DIR --repeat 5 --files 200
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import textwork_reference as ref  # noqa: E402

import watcher.normalise as normalise  # noqa: E402
from watcher import htmltext, urls  # noqa: E402
from watcher.dedup import item_keys  # noqa: E402
from watcher.parse import parse_feed  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
Call = tuple[tuple[Any, ...], dict[str, Any]]


def feed_files(farm: Path, limit: int | None) -> list[Path]:
    folder = farm / "feeds" if (farm / "feeds").is_dir() else farm
    files = sorted(p for p in folder.iterdir() if p.suffix in (".rss", ".atom"))
    return files[:limit] if limit else files


def content_type(path: Path) -> str:
    return "application/atom+xml" if path.suffix == ".atom" else "application/rss+xml"


def parse_all(bodies: Sequence[tuple[str, bytes, str]]) -> int:
    """Items made; the work one analysis worker does per feed before matching."""
    n = 0
    for url, body, ctype in bodies:
        for item in parse_feed(body, url=url, headers={"content-type": ctype}, now=NOW).items:
            item_keys(item)
            n += 1
    return n


def record(bodies: Sequence[tuple[str, bytes, str]]) -> dict[str, list[Call]]:
    """The arguments of every call the parse stage makes to the three functions."""
    calls: dict[str, list[Call]] = {"plain_text": [], "absolute_link": [], "canonical_url": []}

    def spy(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls[name].append((args, kwargs))
            return fn(*args, **kwargs)

        return wrapped

    import watcher.dedup as dedup
    import watcher.parse as parse

    saved = (normalise.plain_text, normalise.absolute_link, parse.absolute_link, dedup.canonical_url)
    normalise.plain_text = spy("plain_text", saved[0])  # type: ignore[assignment]
    normalise.absolute_link = parse.absolute_link = spy("absolute_link", saved[1])  # type: ignore[assignment]
    dedup.canonical_url = spy("canonical_url", saved[3])  # type: ignore[assignment]
    try:
        parse_all(bodies)
    finally:
        normalise.plain_text, normalise.absolute_link, parse.absolute_link, dedup.canonical_url = saved
    return calls


@contextmanager
def frozen_code() -> Iterator[None]:
    """parse_feed and item_keys calling the frozen copies wherever they call the tuned functions."""
    import watcher.dedup as dedup
    import watcher.parse as parse

    targets = [
        (normalise, "plain_text", ref.plain_text),
        (normalise, "clean", ref.clean),
        (normalise, "absolute_link", ref.absolute_link),
        (parse, "absolute_link", ref.absolute_link),
        (parse, "clean", ref.clean),
        (dedup, "canonical_url", ref.canonical_url),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in targets]
    for module, name, fn in targets:
        setattr(module, name, fn)
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def compare(
    name: str, old: Callable[..., Any], new: Callable[..., Any], calls: list[Call], repeat: int
) -> None:
    mismatches = sum(1 for a, k in calls if old(*a, **k) != new(*a, **k))
    if mismatches:
        raise SystemExit(f"{name}: {mismatches} of {len(calls)} outputs differ; no timing printed")
    t_old = best_cpu(lambda: [old(*a, **k) for a, k in calls], repeat)
    t_new = best_cpu(lambda: [new(*a, **k) for a, k in calls], repeat)
    print(
        f"{name:<16} {len(calls):>8} calls  before {t_old / len(calls) * 1e6:7.2f} us/call"
        f"  after {t_new / len(calls) * 1e6:7.2f} us/call  ({t_old / max(t_new, 1e-9):.1f}x)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("farm", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="passes per figure; the best counts")
    ap.add_argument("--files", type=int, default=None, help="only the first N files")
    args = ap.parse_args(argv)
    bodies = [
        (f"https://{p.stem}.example/feed", p.read_bytes(), content_type(p))
        for p in feed_files(args.farm, args.files)
    ]
    calls = record(bodies)
    print(f"{len(bodies)} files, {len(calls['canonical_url'])} items with a link")
    compare("plain_text", ref.plain_text, htmltext.plain_text, calls["plain_text"], args.repeat)
    compare("absolute_link", ref.absolute_link, normalise.absolute_link, calls["absolute_link"], args.repeat)
    compare("canonical_url", ref.canonical_url, urls.canonical_url, calls["canonical_url"], args.repeat)
    items = parse_all(bodies)
    with frozen_code():
        t_before = best_cpu(lambda: parse_all(bodies), args.repeat)
    t_after = best_cpu(lambda: parse_all(bodies), args.repeat)
    print(
        f"{'parse+item_keys':<16} {items:>8} items  before {t_before / items * 1e6:7.2f} us/item"
        f"  after {t_after / items * 1e6:7.2f} us/item  ({t_before / max(t_after, 1e-9):.1f}x)"
    )


if __name__ == "__main__":
    main()
