"""The pipeline driven directly with a chosen clock: dedup window, topic scoping, heartbeat digests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher.alerts import deliver
from watcher.config import Config, load_config
from watcher.fetch import Fetcher
from watcher.pipeline import Runtime, age_out, poll_all, sync_feeds
from watcher.store import Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BODY = (
    "Serbia received the first batteries of the Chinese HQ-22 air defence system on Saturday, the ministry of "
    "defence said, adding that crews had finished training near Belgrade and the system would be on duty soon."
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _run(cfg: Config, clock: Clock, urls: list[str] | None = None) -> None:
    async def go() -> None:
        with Store(cfg.database_path) as store:
            async with Fetcher() as fetcher:
                rt = Runtime(config=cfg, store=store, fetcher=fetcher, clock=clock)
                sync_feeds(rt)
                feeds = [f for f in cfg.feeds if urls is None or f.url in urls]
                await poll_all(rt, feeds)

    asyncio.run(go())


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{text}', encoding="utf-8")
    return load_config(path, environ={})


def _stories(cfg: Config) -> dict[str, str]:
    with Store(cfg.database_path) as store:
        return {h.feed: h.story for h in store.hits()} | {
            c["feed"]: h.story for h in store.hits() for c in h.also_seen
        }


def _two_outlets(feed_server: FeedServer, tmp_path: Path, copy_at: datetime) -> Config:
    feed_server.serve(
        "/a", rss([Entry("a1", "Serbia gets Chinese HQ-22 air defence", "https://a.example/1", BODY, T0)])
    )
    feed_server.serve("/b", rss([Entry("b1", "Serbia gets Chinese HQ-22 air defence system", "https://b.example/9",
                                       "BELGRADE (AP) — " + BODY, copy_at)]))  # fmt: skip
    return _config(
        tmp_path,
        f'first_poll_window = "30d"\n[[feeds]]\nurl = "{feed_server.url("/a")}"\nname = "A"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/b")}"\nname = "B"\n'
        "[[topics]]\nname = \"arms\"\nquery = 'Serbia AND HQ-22'\n",
    )


def test_copy_within_the_dedup_window_joins_the_story(feed_server: FeedServer, tmp_path: Path) -> None:
    cfg = _two_outlets(feed_server, tmp_path, T0 + timedelta(days=1))
    clock = Clock(T0)
    _run(cfg, clock, [feed_server.url("/a")])
    clock.now = T0 + timedelta(days=1)
    _run(cfg, clock, [feed_server.url("/b")])
    stories = _stories(cfg)
    assert stories["A"] == stories["B"]


def test_index_entries_age_out_after_the_window(feed_server: FeedServer, tmp_path: Path) -> None:
    cfg = _two_outlets(feed_server, tmp_path, T0 + timedelta(days=15))
    clock = Clock(T0)
    _run(cfg, clock, [feed_server.url("/a")])
    clock.now = T0 + timedelta(days=15)

    async def prune() -> int:
        with Store(cfg.database_path) as store:
            async with Fetcher() as fetcher:
                return age_out(Runtime(config=cfg, store=store, fetcher=fetcher, clock=clock))

    assert asyncio.run(prune()) == 1  # older than the default 14-day window
    _run(cfg, clock, [feed_server.url("/b")])
    stories = _stories(cfg)
    assert stories["A"] != stories["B"]  # the old story is closed: the late copy is a story of its own


def test_topics_are_scoped_by_feed_tag_and_language(feed_server: FeedServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    feed_server.serve(
        "/sr", rss([Entry("s1", "Srbija i HQ-22", "https://sr.example/1", "x", now)], language="sr")
    )
    feed_server.serve(
        "/en", rss([Entry("e1", "Serbia and HQ-22", "https://en.example/1", "x", now)], language="en")
    )
    feed_server.serve(
        "/intl", rss([Entry("i1", "Serbia, HQ-22", "https://in.example/1", "x", now)], language="en")
    )
    cfg = _config(
        tmp_path,
        f'[[feeds]]\nurl = "{feed_server.url("/sr")}"\nname = "SR"\ntags = ["balkans"]\n'
        f'[[feeds]]\nurl = "{feed_server.url("/en")}"\nname = "EN"\ntags = ["balkans"]\n'
        f'[[feeds]]\nurl = "{feed_server.url("/intl")}"\nname = "INTL"\n'
        '[[topics]]\nname = "balkans"\nquery = \'(Serbia OR Srbija) AND HQ-22\'\nfeeds = ["tag:balkans"]\n'
        '[[topics]]\nname = "serbian"\nquery = \'(Serbia OR Srbija) AND HQ-22\'\nlanguages = ["sr"]\n'
        '[[topics]]\nname = "intl"\nquery = \'(Serbia OR Srbija) AND HQ-22\'\nfeeds = ["INTL"]\n',
    )
    _run(cfg, Clock(now))
    with Store(cfg.database_path) as store:
        got = sorted((h.topic, h.feed) for h in store.hits())
    assert got == [("balkans", "EN"), ("balkans", "SR"), ("intl", "INTL"), ("serbian", "SR")]


def test_heartbeat_digest_only_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "digests.log"
    base = (
        f'[channels.screen]\ntype = "console"\nstdout = false\nfile = "{log}"\n'
        '[[feeds]]\nurl = "http://127.0.0.1:9/feed"\nname = "Quiet"\n'
        '[[topics]]\nname = "arms"\nquery = \'Serbia\'\nchannels = ["screen"]\ndigest = "daily 08:00"\n'
    )
    for heartbeat, expect_sent in ((False, False), (True, True)):
        cfg = _config(tmp_path, base + f"heartbeat = {str(heartbeat).lower()}\n")

        async def run(cfg: Config = cfg) -> int:
            with Store(cfg.database_path) as store:
                return len(await deliver(cfg, store, T0, heartbeat=True))

        assert (asyncio.run(run()) == 1) is expect_sent
    text = log.read_text(encoding="utf-8")
    assert text.count("Watcher digest") == 1
    assert "0 new stories" in text
