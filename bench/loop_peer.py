"""The baseline a developer would write first: a sequential httpx + feedparser loop with conditional GET.

State (validators and the ids already seen, per feed) is one JSON file, read at start and written at the
end, so a second run is a warm cycle. New entries are counted, not stored anywhere else.

    python bench/loop_peer.py URLS_FILE STATE_FILE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import feedparser
import httpx


def main() -> None:
    urls = Path(sys.argv[1]).read_text().split()
    state_path = Path(sys.argv[2])
    state: dict[str, dict[str, object]] = json.loads(state_path.read_text()) if state_path.exists() else {}
    new = fetched = not_modified = failed = 0
    with httpx.Client(timeout=60, headers={"User-Agent": "loop-peer/1"}) as client:
        for url in urls:
            s = state.setdefault(url, {"seen": []})
            headers = {}
            if s.get("etag"):
                headers["If-None-Match"] = str(s["etag"])
            if s.get("modified"):
                headers["If-Modified-Since"] = str(s["modified"])
            try:
                r = client.get(url, headers=headers)
            except httpx.HTTPError:
                failed += 1
                continue
            if r.status_code == 304:
                not_modified += 1
                continue
            if r.status_code != 200:
                failed += 1
                continue
            fetched += 1
            s["etag"], s["modified"] = r.headers.get("etag"), r.headers.get("last-modified")
            parsed = feedparser.parse(
                r.content, response_headers={"content-type": r.headers.get("content-type", "")}
            )
            seen = set(s["seen"])  # type: ignore[arg-type]
            for e in parsed.entries:
                key = e.get("id") or e.get("link") or e.get("title")
                if key and key not in seen:
                    seen.add(key)
                    new += 1
            s["seen"] = sorted(seen)
    state_path.write_text(json.dumps(state))
    print(
        f"{len(urls)} feeds: {fetched} fetched, {not_modified} not modified, {failed} failed, {new} new entries"
    )


if __name__ == "__main__":
    main()
