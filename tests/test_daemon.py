"""The daemon as a user runs it: a subprocess, real feeds on loopback, SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.clihelp import json_lines
from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer


# 16 feeds or more and the daemon forks its analysis pool, as `watcher poll` does: both paths must behave.
@pytest.mark.parametrize("extra_feeds", [0, 20], ids=["inline", "analysis-pool"])
def test_daemon_polls_alerts_and_stops_cleanly_on_sigterm(
    feed_server: FeedServer, tmp_path: Path, extra_feeds: int
) -> None:
    now = datetime.now(UTC)
    extra = ""
    for n in range(extra_feeds):
        feed_server.serve(
            f"/f{n}", rss([Entry(f"g{n}", f"Weather report {n}", f"https://x.example/{n}", "rain", now)])
        )
        extra += f'[[feeds]]\nurl = "{feed_server.url(f"/f{n}")}"\n'
    feed_server.serve(
        "/a", rss([Entry("a1", "Serbia buys FK-3 air defence", "https://x.example/a1", "HQ-22", now)])
    )
    feed_server.serve("/b", rss([Entry("b1", "Weather", "https://x.example/b1", "sunny", now)]))
    feed_server.hang("/slow")  # in flight when SIGTERM arrives: must be abandoned, not waited on forever
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nfetch_timeout = "5m"\n{extra}'
        f'[[feeds]]\nurl = "{feed_server.url("/a")}"\nname = "A"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/b")}"\nname = "B"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/slow")}"\nname = "Slow"\n'
        f'[channels.screen]\ntype = "console"\nfile = "{tmp_path / "digests.log"}"\n'
        '[[topics]]\nname = "arms"\nquery = \'"FK-3" OR HQ22\'\nchannels = ["screen"]\n',
        encoding="utf-8",
    )
    daemon = DaemonProcess(cfg, "--tick", "0.2", "--grace", "1")
    try:
        daemon.wait_for("watcher daemon started")
        daemon.wait_for("digest: topic=arms channel=screen sent 1 stories")
        code = daemon.terminate(signal.SIGTERM)
    finally:
        daemon.kill()
    assert code == 0, "".join(daemon.log)
    assert any("watcher daemon stopped" in line for line in daemon.log)
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 2 + extra_feeds
    assert [h["guid"] for h in json_lines(cfg, "hits")] == ["a1"]
    assert [d["status"] for d in json_lines(cfg, "deliveries")] == ["sent"]
    assert "Serbia buys FK-3 air defence" in (tmp_path / "digests.log").read_text(encoding="utf-8")


def test_second_signal_exits_at_once(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.hang("/slow")
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nfetch_timeout = "5m"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/slow")}"\n',
        encoding="utf-8",
    )
    daemon = DaemonProcess(cfg, "--tick", "0.2")
    try:
        daemon.wait_for("watcher daemon started")
        daemon.proc.send_signal(signal.SIGINT)
        daemon.wait_for("finishing in-flight polls")
        code = daemon.terminate(signal.SIGINT)
    finally:
        daemon.kill()
    assert code == 0
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
