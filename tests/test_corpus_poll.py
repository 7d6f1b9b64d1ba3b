"""Every file of feedparser's corpus, served by the local server and polled in ONE `poll`: the process
never fails, and each feed either yields items or has a recorded error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.feedserver import FeedServer

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "feedparser"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feed corpus not found at {CORPUS}")


@pytest.mark.slow
def test_whole_corpus_in_one_poll(feed_server: FeedServer, tmp_path: Path) -> None:
    files = sorted(
        p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in {".xml", ".json", ".rdf", ".atom"}
    )
    assert len(files) > 1000
    feeds = []
    for i, f in enumerate(files):
        path = f"/c/{i}/{f.name}"
        feed_server.serve_corpus_file(path, f)
        feeds.append(f'[[feeds]]\nurl = "{feed_server.url(path)}"\nname = "{f.relative_to(CORPUS)}"\n')
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nconcurrency = 64\nper_host = 64\n'
        + "".join(feeds)
        + "[[topics]]\nname = \"any\"\nquery = 'the OR a OR feed'\n",
        encoding="utf-8",
    )
    out = cli(cfg, "poll").output
    assert f"polled {len(files)} feeds" in out
    rows = json_lines(cfg, "feeds")
    assert len(rows) == len(files)
    for r in rows:
        assert r["status"] in {"ok", "error"}, r
        assert (r["status"] == "ok") or r["last_error"], r  # an error always has words
    ok = [r for r in rows if r["status"] == "ok"]
    assert sum(r["items"] for r in ok) > 1000
    assert len(ok) > len(rows) // 2
