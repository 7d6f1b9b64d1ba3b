"""Retention: `watcher prune` and the daemon's periodic prune, on stores filled by real polls with a chosen clock."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher import archive
from watcher.config import Config, load_config
from watcher.fetch import Fetcher
from watcher.ftsquery import to_fts
from watcher.pipeline import Runtime, poll_all, sync_feeds
from watcher.query import parse_query
from watcher.store import Store
from watcher.store import fts as store_fts

T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=100)
CUTOFF = T0 + timedelta(days=50)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _poll(cfg: Config, now: datetime, paths: list[str] | None = None) -> None:
    async def go() -> None:
        with Store(cfg.database_path) as store:
            async with Fetcher() as fetcher:
                rt = Runtime(config=cfg, store=store, fetcher=fetcher, clock=Clock(now))
                sync_feeds(rt)
                await poll_all(rt, [f for f in cfg.feeds if paths is None or f.name in paths])

    asyncio.run(go())


def _e(guid: str, title: str, link: str, text: str, when: datetime) -> Entry:
    return Entry(guid, title, link, text, when)


@pytest.fixture
def aged(feed_server: FeedServer, tmp_path: Path) -> Config:
    """Polls at T0 and 100 days later (the clock injected), so some stories are old and some are not.

    * hit story "a1" (+ its copy "b1" at another outlet): all old;
    * hit story "a6": old, with a copy "c1" seen 100 days later;
    * no-hit story "x1": old, with a copy "c2" seen 100 days later;
    * "a2" (edited once: a history row), "a3", "b2": old, no hits;  "a4", "a5": new (a5 a hit).
    """
    feed_server.serve("/a", rss([
        _e("a1", "Serbia buys FK-3 air defence", "https://a.example/1", "HQ-22 batteries for Belgrade", T0),
        _e("a2", "Weather in Belgrade", "https://a.example/2", "Sunny and warm all week", T0),
        _e("a3", "Football results", "https://a.example/3", "Partizan won the derby", T0),
        _e("a6", "Serbia tests drones", "https://a.example/6", "Drones were tested near Nis", T0),
        _e("x1", "Markets rally", "https://a.example/x", "Stocks rose in Belgrade", T0),
    ]))  # fmt: skip
    feed_server.serve("/b", rss([
        _e("b1", "Serbia buys FK-3 air defence system", "https://a.example/1", "HQ-22 for Belgrade", T0),
        _e("b2", "Traffic", "https://b.example/2", "Roadworks on the highway", T0),
    ]))  # fmt: skip
    path = tmp_path / "watcher.toml"
    feeds = "".join(
        f'[[feeds]]\nurl = "{feed_server.url(p)}"\nname = "{p[1:]}"\n' for p in ("/a", "/b", "/c")
    )
    path.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nfirst_poll_window = "1000d"\n{feeds}'
        f'[channels.screen]\ntype = "console"\nfile = "{tmp_path / "digests.log"}"\n'
        '[[topics]]\nname = "arms"\nquery = \'Serbia\'\nchannels = ["screen"]\n',
        encoding="utf-8",
    )
    cfg = load_config(path, environ={})
    _poll(cfg, T0, ["a"])  # one outlet after the other, so the hit is on a1, not on its copy b1
    _poll(cfg, T0, ["b"])
    feed_server.serve("/a", rss([
        _e("a2", "Weather in Belgrade (updated)", "https://a.example/2", "Rain after all", T0),
    ]))  # fmt: skip
    _poll(cfg, T0 + timedelta(days=1), ["a"])
    feed_server.serve("/a", rss([
        _e("a4", "Markets", "https://a.example/4", "Stocks fell", LATER),
        _e("a5", "Serbia signs deal", "https://a.example/5", "A deal was signed", LATER),
    ]))  # fmt: skip
    feed_server.serve("/c", rss([
        _e("c1", "Serbia tests drones", "https://a.example/6", "Drones were tested near Nis", LATER),
        _e("c2", "Markets rally", "https://a.example/x", "Stocks rose in Belgrade", LATER),
    ]))  # fmt: skip
    _poll(cfg, LATER, ["a", "c"])
    return cfg


def _guids(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT guid FROM items")}


def _hit_guids(store: Store) -> set[str]:
    return {h.guid for h in store.hits()}


def test_prune_keeps_hits_and_their_stories(aged: Config) -> None:
    with Store(aged.database_path) as store:
        assert _guids(store) == {"a1", "a2", "a3", "a4", "a5", "a6", "x1", "b1", "b2", "c1", "c2"}
        assert _hit_guids(store) == {"a1", "a5", "a6"}
        (x_story,) = store.conn.execute("SELECT story_id FROM items WHERE guid = 'x1'").fetchone()
        assert store.conn.execute("SELECT story_id FROM items WHERE guid = 'c2'").fetchone() == (x_story,)
        plan = archive.prune(store, before=CUTOFF, dry_run=True)
        assert _guids(store) == {"a1", "a2", "a3", "a4", "a5", "a6", "x1", "b1", "b2", "c1", "c2"}
        report = archive.prune(store, before=CUTOFF, batch=2)  # several batches
        assert report.counts == plan.counts
        assert report.counts == store_fts.PruneCounts(items=4, stories=3, hits=0, deliveries=0, history=1,
                                                      neardup=4)  # fmt: skip
        assert _guids(store) == {"a1", "b1", "a4", "a5", "a6", "c1", "c2"}
        assert _hit_guids(store) == {"a1", "a5", "a6"}
        assert store.conn.execute("SELECT count(*) FROM item_history").fetchone() == (0,)
        # the story that lost its first item points at the copy that stays
        c2 = store.conn.execute("SELECT id FROM items WHERE guid = 'c2'").fetchone()[0]
        assert store.conn.execute(
            "SELECT first_item_id FROM stories WHERE id = ?", (x_story,)
        ).fetchone() == (c2,)
        # the index lost exactly those rows, and its near-duplicate fingerprints are gone too
        assert store_fts.check(store) == []
        found = {r["guid"] for r in store_fts.search_rows(store, to_fts(parse_query("Belgrade OR Partizan")))}
        assert found == {"a1", "b1", "c2"}
        assert store.conn.execute(
            "SELECT count(*) FROM neardup_items WHERE item_id NOT IN (SELECT id FROM items)"
        ).fetchone() == (0,)
        assert store.integrity_check() == "ok"
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # nothing left to do: a second run removes nothing
        assert archive.prune(store, before=CUTOFF).counts == store_fts.PruneCounts()


def test_prune_with_hits_removes_whole_old_stories_only(aged: Config) -> None:
    with Store(aged.database_path) as store:
        plan = archive.prune(store, before=CUTOFF, include_hits=True, dry_run=True)
        report = archive.prune(store, before=CUTOFF, include_hits=True, vacuum=True)
        assert report.counts == plan.counts
        assert report.counts == store_fts.PruneCounts(items=6, stories=4, hits=1, deliveries=1, history=1,
                                                      neardup=6)  # fmt: skip
        # a1/b1's story was all old: gone with its hit and delivery; a6 stays (its story has a recent copy)
        assert _guids(store) == {"a4", "a5", "a6", "c1", "c2"}
        assert _hit_guids(store) == {"a5", "a6"}
        assert store.conn.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)
        assert store_fts.check(store) == []
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_prune_stops_after_max_batches(aged: Config) -> None:
    with Store(aged.database_path) as store:
        first = archive.prune(store, before=CUTOFF, batch=1, max_batches=2)
        assert not first.finished and first.counts.items == 2
        assert "stopped early" in first.format()
        rest = archive.prune(store, before=CUTOFF, batch=1)
        assert rest.finished and rest.counts.items == 2


def test_retention_setting(aged: Config) -> None:
    assert archive.retention_cutoff(aged, LATER) is None  # default: keep everything
    with Store(aged.database_path) as store:
        assert archive.apply_retention(store, aged, LATER) is None
    keep = aged.path.read_text(encoding="utf-8").replace("[watcher]\n", '[watcher]\nretention = "50d"\n', 1)
    aged.path.write_text(keep, encoding="utf-8")
    cfg = load_config(aged.path, environ={})
    assert archive.retention_cutoff(cfg, LATER) == CUTOFF
    with Store(cfg.database_path) as store:
        report = archive.apply_retention(store, cfg, LATER)
        assert report is not None and report.counts.items == 4 and _hit_guids(store) == {"a1", "a5", "a6"}


def test_cli_prune(aged: Config) -> None:
    path = aged.path
    # the CLI's clock is the real one: an age that puts its cutoff at CUTOFF (to the day)
    age = (datetime.now(UTC) - CUTOFF).days
    out = cli(path, "prune", "--older-than", f"{age}d", "--dry-run").output
    assert "would remove 4 items, 3 stories, 0 hits, 0 deliveries, 1 history rows" in out
    out = cli(path, "prune", "--older-than", f"{age}d", "--vacuum").output
    assert "removed 4 items, 3 stories" in out
    assert {h["guid"] for h in json_lines(path, "hits")} == {"a1", "a5", "a6"}
    assert "give --older-than" in cli(path, "prune", code=2).output
    assert "not a duration" in cli(path, "prune", "--older-than", "soon", code=2).output


def test_config_rejects_a_retention_under_a_day(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text('[watcher]\nretention = "2h"\n', encoding="utf-8")
    assert "watcher.retention: must be at least '1d'" in cli(path, "check", code=2).output


def test_daemon_prunes_under_retention(feed_server: FeedServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    feed_server.serve("/a", rss([
        _e("old", "Weather", "https://a.example/1", "Sunny", now - timedelta(days=400)),
        _e("hit", "Serbia buys drones", "https://a.example/2", "Drones", now - timedelta(days=400)),
    ]))  # fmt: skip
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n[[feeds]]\nurl = "{feed_server.url("/a")}"\nname = "A"\n'
        "[[topics]]\nname = \"arms\"\nquery = 'Serbia'\n",
        encoding="utf-8",
    )
    cli(path, "poll")
    with sqlite3.connect(
        tmp_path / "w.db"
    ) as db:  # pretend both were first seen long ago, and the feed is due
        db.execute("UPDATE items SET first_seen = '2000-01-01T00:00:00+00:00'")
        db.execute("UPDATE feeds SET next_poll = '2000-01-01T00:00:00+00:00'")
    path.write_text(
        path.read_text(encoding="utf-8").replace("[watcher]\n", '[watcher]\nretention = "365d"\n')
    )
    daemon = DaemonProcess(path, "--tick", "0.2")
    try:
        line = daemon.wait_for("retention:")
        daemon.terminate()
    finally:
        daemon.kill()
    assert "removed 1 items, 1 stories" in line
    with Store(tmp_path / "w.db") as store:
        assert _guids(store) == {"hit"}


def test_a_pruned_item_still_in_its_feed_never_comes_back(feed_server: FeedServer, tmp_path: Path) -> None:
    """Items published before the retention horizon are not stored: a feed that still lists an item pruned
    with its hit cannot bring it back as new and alert for it a second time."""
    feed_server.serve("/r", rss([_e("r1", "Serbia buys FK-3", "https://r.example/1", "HQ-22 too", T0)]))
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nretention = "30d"\nfirst_poll_window = "1000d"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/r")}"\nname = "r"\n'
        "[[topics]]\nname = \"arms\"\nquery = 'Serbia'\n",
        encoding="utf-8",
    )
    cfg = load_config(path)
    _poll(cfg, T0)
    assert [h["title"] for h in json_lines(path, "hits")] == ["Serbia buys FK-3"]
    with Store(cfg.database_path) as store:
        archive.prune(store, before=LATER - timedelta(days=30), include_hits=True)
    assert json_lines(path, "hits") == []

    feed_server.serve("/r", rss([
        _e("r1", "Serbia buys FK-3", "https://r.example/1", "HQ-22 too", T0),
        _e("r2", "Serbia buys HQ-22", "https://r.example/2", "A second battery", LATER - timedelta(days=1)),
    ]))  # fmt: skip
    _poll(cfg, LATER)
    assert [h["title"] for h in json_lines(path, "hits")] == ["Serbia buys HQ-22"]
    with Store(cfg.database_path) as store:
        assert [row["guid"] for row in store.iter_items(None)] == ["r2"]
