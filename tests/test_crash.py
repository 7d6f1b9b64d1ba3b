"""Crash safety: `watcher run` is SIGKILLed at random moments, many times, and nothing is lost or doubled.

Feeds grow by one item on every request, so every poll has new items and, most of the time, new hits that
go at once to a webhook sink. Each round starts the daemon, waits for something observable (a feed
request, a POST at the sink, or just a random moment of start-up), waits a random few milliseconds more
and kills it with SIGKILL. A final run with frozen feeds must then bring the database to the state one
clean run would have produced.

The one thing SIGKILL can legitimately double is the digest that the sink had accepted when the daemon
died before recording it as sent: no outbox can make a remote POST and a local commit one atomic step.
The test allows a repeat only for the hits of such an in-doubt payload (the last POST received before a
kill) and fails on any other repeat, on any lost hit and on any item stored twice or never.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedRequestHandler, FeedServer
from tests.httpsink import HttpSink

pytestmark = pytest.mark.slow

SEED = 20240601
KILLS = 20
FEEDS = 3
# Words that can never match either topic (no "drone…", no "serbia"), so only the generator decides.
WORDS = (
    "harbour minister budget river council festival orchard bridge tariff museum senate pipeline "
    "glacier vaccine railway lottery summit harvest strike court election bakery satellite tunnel "
    "ferry stadium ballot reform audit mayor library opera copper wheat canal drought embassy "
    "tram clinic school vineyard forest archive theatre bank pension airport lighthouse quarry"
).split()


@dataclass
class GrowingFeeds:
    """Feeds that gain one item per request until frozen; remembers every item it ever served."""

    rng: random.Random
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    matches: dict[str, set[str]] = field(default_factory=lambda: {"arms": set(), "serbia": set()})
    frozen: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, srv: FeedServer, path: str) -> None:
        self.entries[path] = []

        def answer(h: FeedRequestHandler) -> None:
            with self.lock:
                if not self.frozen:
                    self._grow(path)
                body = rss(self.entries[path], title=path).encode()
            h.respond(200, body)

        srv.handler(path, answer)

    def _grow(self, path: str) -> None:
        others = [e for p, es in self.entries.items() if p != path for e in es]
        mine = {e.guid for e in self.entries[path]}
        copies = [e for e in others if e.guid not in mine]
        if copies and self.rng.random() < 0.15:
            self.entries[path].append(self.rng.choice(copies))  # a wire story republished: same guid
            return
        n = sum(len(es) for es in self.entries.values())
        words = self.rng.sample(WORDS, 6)
        key = f"{path.strip('/')}-{n}"
        if self.rng.random() < 0.5:
            words.insert(2, "drones")
            self.matches["arms"].add(key)
        if self.rng.random() < 0.3:
            words.insert(0, "Serbia")
            self.matches["serbia"].add(key)
        summary = " ".join(self.rng.sample(WORDS, 10))
        entry = Entry(key, " ".join(words).capitalize(), f"https://news.example/{key}", summary,
                      datetime.now(UTC))  # fmt: skip
        self.entries[path].append(entry)

    def served(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(p, e.guid) for p, es in self.entries.items() for e in es}


def write_config(tmp_path: Path, srv: FeedServer, sink: HttpSink, paths: list[str]) -> Path:
    feeds = "".join(f'[[feeds]]\nurl = "{srv.url(p)}"\ninterval = "250ms"\n' for p in paths)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\nfetch_timeout = "5s"\n{feeds}'
        f'[channels.a]\ntype = "webhook"\nurl = "{sink.url("/a")}"\n'
        f'[channels.b]\ntype = "webhook"\nurl = "{sink.url("/b")}"\n'
        '[[topics]]\nname = "arms"\nquery = "drone*"\nchannels = ["a"]\n'
        '[[topics]]\nname = "serbia"\nquery = "Serbia"\nchannels = ["b"]\n',
        encoding="utf-8",
    )
    return cfg


def integrity(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def settled(db: Path, served: set[tuple[str, str]], srv: FeedServer) -> bool:
    """Every served item stored and no delivery left pending: what one clean run ends with."""
    if not db.exists():
        return False
    stored = {(f.removeprefix(srv.url("")), g) for f, g in rows(db, "SELECT feed_url, guid FROM items")}
    pending = rows(db, "SELECT count(*) FROM deliveries WHERE status != 'sent'")[0][0]
    return served <= stored and pending == 0


def kill_round(
    daemon: DaemonProcess, rng: random.Random, srv: FeedServer, sink: HttpSink, paths: list[str]
) -> str:
    """Wait for one kind of moment, then SIGKILL a few milliseconds later; returns the kind."""
    kind = rng.choice(["start-up", "poll", "poll", "digest", "digest"])
    if kind == "poll":
        path = rng.choice(paths)
        srv.wait_requests(path, len(srv.requests(path)) + 1, timeout=15)
        time.sleep(rng.uniform(0, 0.08))  # somewhere in fetch, parse or the feed's transaction
    elif kind == "digest":
        sink.wait_received(len(sink.received()) + 1, timeout=15)
        time.sleep(rng.choice([0.0, 0.0, rng.uniform(0, 0.02)]))  # aim at "accepted but not yet recorded"
    else:
        time.sleep(rng.uniform(0, 0.7))  # imports, migrations, the first tick
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)
    return kind


def test_sigkill_at_random_moments_loses_and_doubles_nothing(feed_server: FeedServer, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    feeds = GrowingFeeds(random.Random(SEED + 1))
    paths = [f"/f{i}" for i in range(FEEDS)]
    for p in paths:
        feeds.route(feed_server, p)
    db = tmp_path / "w.db"
    with HttpSink() as sink:
        sink.reply("/a")
        sink.reply("/b")
        cfg = write_config(tmp_path, feed_server, sink, paths)
        kinds: Counter[str] = Counter()
        in_doubt: set[int] = set()  # index of the last POST received before each kill
        for _ in range(KILLS):
            daemon = DaemonProcess(cfg, "--tick", "0.05")
            try:
                kinds[kill_round(daemon, rng, feed_server, sink, paths)] += 1
            finally:
                daemon.kill()
            if sink.received():
                in_doubt.add(len(sink.received()) - 1)
            if db.exists():
                assert integrity(db) == "ok", f"after kill {sum(kinds.values())}"

        with feeds.lock:
            feeds.frozen = True
        served = feeds.served()
        daemon = DaemonProcess(cfg, "--tick", "0.05", "--grace", "5")
        try:
            deadline = time.monotonic() + 20
            while not settled(db, served, feed_server) and time.monotonic() < deadline:
                time.sleep(0.05)  # the daemon's own progress, read from the database
            code = daemon.terminate()
        finally:
            daemon.kill()
        assert code == 0, "".join(daemon.log)
        payloads = [(r.path, r.json()) for r in sink.received()]

    assert set(kinds) == {"start-up", "poll", "digest"}, kinds
    assert integrity(db) == "ok"
    base = feed_server.url("")
    items = [
        (f.removeprefix(base), g, s) for f, g, s in rows(db, "SELECT feed_url, guid, story_id FROM items")
    ]
    assert len(items) == len({(f, g) for f, g, _ in items}), "an item was stored twice"
    stored = {(f, g) for f, g, _ in items}
    assert served - stored == set(), "items the server served were never stored"
    assert stored - served == set()

    story_of = {g: s for _, g, s in items}
    assert len(story_of) == len({(g, s) for _, g, s in items}), "a republished guid must join its first story"
    hits = rows(db, "SELECT id, topic, story_id, backlog FROM hits")
    assert len(hits) == len({(t, s) for _, t, s, _ in hits}), "two hits for one (topic, story)"
    assert not [h for h in hits if h[3]], "fresh items must never be first-poll backlog"
    for topic, guids in feeds.matches.items():
        want = {story_of[g] for g in guids}
        got = {s for _, t, s, _ in hits if t == topic}
        assert got == want, f"topic {topic}: missing {want - got}, unexpected {got - want}"

    statuses = rows(db, "SELECT status, count(*) FROM deliveries GROUP BY status")
    assert statuses == [("sent", len(hits))], statuses
    topic_of_path = {"/a": "arms", "/b": "serbia"}
    sent: Counter[int] = Counter()
    last_copy: dict[int, int] = {}
    for i, (path, payload) in enumerate(payloads):
        assert payload["topic"] == topic_of_path[path]
        for story in payload["stories"]:
            for hit_id in story["hit_ids"]:
                if sent[hit_id]:
                    assert last_copy[hit_id] in in_doubt, (
                        f"hit {hit_id} sent again although POST #{last_copy[hit_id]} was recorded as sent"
                    )
                sent[hit_id] += 1
                last_copy[hit_id] = i
    assert set(sent) == {h[0] for h in hits}, "every hit reaches its channel"
    repeats = sum(n > 1 for n in sent.values())
    print(f"kills: {dict(kinds)}; {len(items)} items, {len(hits)} hits, {len(payloads)} POSTs, "
          f"{repeats} hits sent again after an in-doubt POST")  # fmt: skip
