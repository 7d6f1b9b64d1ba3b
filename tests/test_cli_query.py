"""`watcher match` explains a query against a text; `watcher backtest` runs a query over the archive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.clihelp import cli
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer


def _config(tmp_path: Path, feeds: str = "") -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n[aliases]\nfk3 = ["FK-3", "HQ-22"]\n{feeds}'
        "[[topics]]\nname = \"arms\"\nquery = '(Serbia OR Srbija) AND @fk3'\n",
        encoding="utf-8",
    )
    return cfg


def test_match_explains_terms_across_scripts(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    result = cli(
        cfg, "match", "(Srbija OR Vucic) AND @fk3", "--text", "Вучић: Србија добија систем ФК-3 и HQ22."
    )
    assert result.output.startswith("MATCH")
    assert "Вучић" in result.output and "HQ22" in result.output
    miss = cli(cfg, "match", "Serbia AND drone*", "--text", "Latest stories: Tesla recall", code=1)
    assert miss.output.startswith("NO MATCH")


def test_match_reports_syntax_errors_with_a_caret(tmp_path: Path) -> None:
    result = cli(_config(tmp_path), "match", "(Serbia AND drone*", "--text", "x", code=2)
    assert "column" in result.output and "^" in result.output


def test_backtest_counts_per_feed(feed_server: FeedServer, tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(days=30)
    feed_server.serve("/a", rss([Entry("a1", "Srbija kupila FK-3", "https://a.example/1", "HQ-22", old),
                                 Entry("a2", "Sport", "https://a.example/2", "Partizan", old)]))  # fmt: skip
    feed_server.serve("/b", rss([Entry("b1", "Serbia and the HQ-22", "https://b.example/1", "x", old)]))
    feeds = "".join(
        f'[[feeds]]\nurl = "{feed_server.url(p)}"\nname = "{p[1:].upper()}"\n' for p in ("/a", "/b")
    )
    cfg = _config(tmp_path, feeds)
    cli(cfg, "poll")
    table = cli(cfg, "backtest", "--topic", "arms").output
    assert "2 of 3 stored items match" in table
    assert "1  A" in table and "1  B" in table
    rows = [
        json.loads(x)
        for x in cli(cfg, "backtest", "--query", "Partizan", "--format", "json").output.splitlines()
    ]
    assert [r["guid"] for r in rows] == ["a2"]
