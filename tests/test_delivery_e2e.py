"""Delivery through the outbox: failures keep hits pending, a later run (or a restarted daemon) delivers
every hit exactly once, and a channel that will never work is parked and reported."""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.clihelp import cli, json_lines
from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from tests.httpsink import HttpSink, Reply


@pytest.fixture
def sink() -> object:
    with HttpSink() as s:
        yield s


def _setup(feed_server: FeedServer, sink: HttpSink, tmp_path: Path, titles: list[str]) -> Path:
    now = datetime.now(UTC)
    entries = [
        Entry(f"g{i}", t, f"https://n.example/{i}", f"{t} — details", now) for i, t in enumerate(titles)
    ]
    feed_server.serve("/f", rss(entries))
    sink.slack("/hook")
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\ndelivery_attempts = 3\n'
        f'[[feeds]]\nurl = "{feed_server.url("/f")}"\nname = "Outlet"\n'
        f'[channels.desk]\ntype = "slack"\nwebhook_url = "${{HOOK_URL}}"\n'
        '[[topics]]\nname = "arms"\nquery = \'Serbia\'\nchannels = ["desk"]\n',
        encoding="utf-8",
    )
    return cfg


def _stories_posted(sink: HttpSink, skip: int = 0) -> list[str]:
    """Story titles in the Slack payloads received, after the first `skip` (refused) requests."""
    return _stories_posted_in(sink.received("/hook")[skip:])


def test_failed_send_stays_pending_then_delivered_once(
    feed_server: FeedServer, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", sink.url("/hook"))
    cfg = _setup(feed_server, sink, tmp_path, ["Serbia one", "Serbia two", "Croatia three"])
    cli(cfg, "poll")
    sink.script("/hook", [Reply(500, "boom")])
    result = cli(cfg, "digest", code=1)
    assert "FAILED" in result.output and "500" in result.output
    rows = json_lines(cfg, "deliveries")
    assert [(d["status"], d["attempts"]) for d in rows] == [("pending", 1), ("pending", 1)]
    assert all("500" in d["last_error"] for d in rows)
    refused = len(sink.received("/hook"))

    cli(cfg, "digest")
    assert sorted(_stories_posted(sink, refused)) == ["Serbia one", "Serbia two"]
    assert [d["status"] for d in json_lines(cfg, "deliveries")] == ["sent", "sent"]
    assert "nothing pending" in cli(cfg, "digest").output
    assert len(_stories_posted(sink, refused)) == 2  # nothing sent twice


def test_rate_limit_then_permanent_failure_is_parked(
    feed_server: FeedServer, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", sink.url("/hook"))
    cfg = _setup(feed_server, sink, tmp_path, ["Serbia one"])
    cli(cfg, "poll")
    sink.script("/hook", [Reply(429, "rate_limited", {"Retry-After": "30"}), Reply(404, "no_service")])
    cli(cfg, "digest", code=1)
    (d,) = json_lines(cfg, "deliveries")
    assert d["status"] == "pending" and d["next_attempt"] is not None  # honours Retry-After
    cli(cfg, "digest", code=1)
    (d,) = json_lines(cfg, "deliveries")
    assert d["status"] == "failed" and "404" in d["last_error"]  # a bad webhook will not heal: parked
    assert "1 failed deliveries queued again" in cli(cfg, "deliveries", "--retry").output
    cli(cfg, "digest")
    assert [x["status"] for x in json_lines(cfg, "deliveries")] == ["sent"]


def test_dry_run_renders_without_sending(
    feed_server: FeedServer, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", sink.url("/hook"))
    cfg = _setup(feed_server, sink, tmp_path, ["Serbia <!channel> one"])
    cli(cfg, "poll")
    out = cli(cfg, "digest", "--dry-run").output
    assert '"blocks"' in out and "&lt;!channel&gt;" in out and "<!channel>" not in out
    assert sink.received("/hook") == []
    assert [d["status"] for d in json_lines(cfg, "deliveries")] == ["pending"]


def test_daemon_killed_while_channel_fails_delivers_everything_once_after_restart(
    feed_server: FeedServer, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", sink.url("/hook"))
    cfg = _setup(feed_server, sink, tmp_path, ["Serbia one", "Serbia two"])
    sink.reply("/hook", 500, "down")
    daemon = DaemonProcess(cfg, "--tick", "0.2", "--grace", "1")
    try:
        daemon.wait_for("delivery failed (attempt 1)")
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)
    finally:
        daemon.kill()
    assert [d["status"] for d in json_lines(cfg, "deliveries")] == ["pending", "pending"]
    refused = len(sink.received("/hook"))
    sink.reply("/hook", 200, "ok")
    sink.slack("/hook")
    with sqlite3.connect(tmp_path / "w.db") as db:  # pretend the retry back-off has passed
        db.execute("UPDATE deliveries SET next_attempt = NULL")
    daemon = DaemonProcess(cfg, "--tick", "0.2", "--grace", "1")
    try:
        daemon.wait_for("digest: topic=arms channel=desk sent 2 stories")
        code = daemon.terminate()
    finally:
        daemon.kill()
    assert code == 0
    assert sorted(_stories_posted(sink, refused)) == ["Serbia one", "Serbia two"]
    assert [d["status"] for d in json_lines(cfg, "deliveries")] == ["sent", "sent"]


def test_slack_parts_accepted_before_a_failure_are_not_posted_again(
    feed_server: FeedServer, sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", sink.url("/hook"))
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    titles = [f"Serbia {a} {b} report" for a in words for b in words[:7]]  # 70 stories: Slack needs 2+ parts
    cfg = _setup(feed_server, sink, tmp_path, titles)
    cli(cfg, "poll")
    sink.script("/hook", [Reply(200, "ok"), Reply(500, "boom")])
    assert "after 1 of" in cli(cfg, "digest", code=1).output
    first, _refused = sink.received("/hook")
    accepted_first = _stories_posted_in([first])
    assert 0 < len(accepted_first) < len(titles)
    statuses = [d["status"] for d in json_lines(cfg, "deliveries")]
    assert statuses.count("sent") == len(accepted_first)
    assert statuses.count("pending") == len(titles) - len(accepted_first)

    cli(cfg, "digest")
    later = sink.received("/hook")[2:]
    posted = accepted_first + _stories_posted_in(later)
    assert sorted(posted) == sorted(titles)  # every story once: the accepted part was not posted again
    assert {d["status"] for d in json_lines(cfg, "deliveries")} == {"sent"}


def _stories_posted_in(requests: list[Any]) -> list[str]:
    titles = []
    for r in requests:
        assert r.problems == (), r.problems
        for block in r.json()["blocks"]:
            if block["type"] == "section" and "<https://n.example/" in block["text"]["text"]:
                titles.append(block["text"]["text"].split("|", 1)[1].split(">", 1)[0])
    return titles
