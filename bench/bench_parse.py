"""Parse floors: one parser over every file of a feed farm, in one process, no network.

Each file is read and parsed in turn (reading is part of the unavoidable work; the files are in the page
cache after the first pass). ``watcher`` is Watcher's own ``parse_feed`` (the lxml fast path with its
feedparser fallback, plus normalisation into Items), so its time is what a poll cycle cannot go below.

    python bench/bench_parse.py FARM_DIR                       # all parsers, a table
    python bench/bench_parse.py FARM_DIR --parser fastfeedparser --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARSERS = ("feedparser", "fastfeedparser", "watcher")


def parser_for(name: str) -> Callable[[bytes, str], int]:
    """A function (body, content type) -> number of items."""
    if name == "feedparser":
        import feedparser

        return lambda body, ctype: len(
            feedparser.parse(body, response_headers={"content-type": ctype}).entries
        )
    if name == "fastfeedparser":
        import fastfeedparser

        return lambda body, ctype: len(fastfeedparser.parse(body).entries)
    if name == "watcher":
        from watcher.parse import parse_feed

        now = datetime.now(UTC)
        return lambda body, ctype: len(
            parse_feed(body, url="http://farm.example/f", headers={"content-type": ctype}, now=now).items
        )
    raise SystemExit(f"unknown parser {name!r}; choose from {', '.join(PARSERS)}")


def run(farm: Path, name: str) -> dict[str, float]:
    parse = parser_for(name)
    files = sorted((farm / "feeds").iterdir())
    kinds = {".rss": "application/rss+xml", ".atom": "application/atom+xml"}
    started = time.perf_counter()
    cpu = time.process_time()
    items = 0
    for path in files:
        items += parse(path.read_bytes(), kinds.get(path.suffix, "application/xml"))
    return {
        "parser": name,  # type: ignore[dict-item]
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "files": len(files),
        "items": items,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("farm", type=Path, help="a farm directory made by bench/farm.py")
    ap.add_argument("--parser", choices=PARSERS, action="append", help="repeatable; default: all")
    ap.add_argument("--json", action="store_true", help="one JSON object per parser")
    args = ap.parse_args()
    for name in args.parser or PARSERS:
        r = run(args.farm, name)
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"{name:15} {r['seconds']:7.2f}s  {r['items'] / r['seconds']:9,.0f} items/s  ({r['items']} items)"
            )


if __name__ == "__main__":
    main()
