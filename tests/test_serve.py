"""HTTP out: Atom per topic, /healthz, /metrics, `watcher serve` and the daemon serving them.

Real parts throughout: feeds come from the local feed server and are polled by the real CLI, the Atom is
parsed back by feedparser, the metrics by prometheus_client's own parser, and the app runs in a real
uvicorn on 127.0.0.1 port 0 (Starlette's TestClient only for the cases about one request).
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher.config import load_config
from watcher.health import check_liveness
from watcher.models import MARK_CLOSE, MARK_OPEN, HitView, Item
from watcher.serve import HttpServer, atom_feed, create_app, entry_id, feed_id, listen
from watcher.store import Store, ts

# An RSS title is HTML: markup escaped once in it is text, which must reach Atom readers as text.
HOSTILE_RSS = 'Serbia &lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;drones&lt;/b&gt; ]]&gt;'
HOSTILE = 'Serbia <script>alert("x")</script> & <b>drones</b> ]]>'
BODY = (
    "Serbia has taken delivery of the Chinese FK-3 air defence system, the defence ministry said on Tuesday, "
    "making Belgrade the first European operator of the HQ-22 export variant."
)


def write_config(tmp_path: Path, feeds: dict[str, str], extra: str = "") -> Path:
    cfg = tmp_path / "watcher.toml"
    listed = "".join(f'[[feeds]]\nurl = "{url}"\nname = "{name}"\n' for name, url in feeds.items())
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{extra}{listed}'
        f'[channels.log]\ntype = "console"\nstdout = false\nfile = "{tmp_path / "d.log"}"\n'
        '[[topics]]\nname = "arms"\nquery = \'Serbia AND (FK-3 OR drone*)\'\nchannels = ["log"]\n'
        '[[topics]]\nname = "quiet.topic"\nquery = "Atlantis"\n',
        encoding="utf-8",
    )
    return cfg


@contextmanager
def running(app: Starlette) -> Iterator[str]:
    """The app in a real uvicorn on 127.0.0.1 port 0, in a thread of its own. The socket listens before the
    thread starts, so the first request waits in the backlog instead of racing the start-up."""
    sock = listen("127.0.0.1", 0)
    server = HttpServer(app, sock, grace=1)

    async def run() -> None:
        server.start()
        await server.wait()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


@contextmanager
def served(app: Starlette) -> Iterator[httpx.Client]:
    with running(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


def hit(**kw: Any) -> HitView:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    base: dict[str, Any] = {
        "id": 1, "topic": "arms", "story": "s-1", "title": "Serbia buys drones", "url": "https://a.example/1",
        "feed": "A", "guid": "g1", "published": now, "first_seen": now, "backlog": False,
        "terms": ("serbia", "drone*"), "snippet": f"{MARK_OPEN}Serbia{MARK_CLOSE} buys {MARK_OPEN}drones{MARK_CLOSE}",
    }  # fmt: skip
    return HitView(**{**base, **kw})


# --- Atom ------------------------------------------------------------------------------------------------


def test_atom_gives_the_same_stories_as_hits_after_real_polls(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    feed_server.serve("/wire", rss([
        Entry("w1", "Serbia takes delivery of Chinese FK-3 air defence", "https://wire.example/fk3", BODY, now),
        Entry("w2", HOSTILE_RSS, "https://wire.example/hostile", "Serbia shows drones", now - timedelta(hours=1)),
        Entry("w3", "Weather", "https://wire.example/weather", "Sunny in Belgrade", now),
    ]))  # fmt: skip
    feed_server.serve("/daily", rss([
        Entry("d1", "Serbia takes delivery of Chinese FK-3 air defence - Daily",
              "https://www.wire.example/fk3/?utm_source=rss", BODY, now),
    ]))  # fmt: skip
    cfg = write_config(tmp_path, {"Wire": feed_server.url("/wire"), "Daily": feed_server.url("/daily")})
    cli(cfg, "poll")
    app = create_app(load_config(cfg))
    with running(app) as base, httpx.Client(base_url=base) as http:
        first = http.get("/topics/arms.atom")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert (
            http.get("/topics/arms.atom", headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        )

        # a later poll brings a new story: the feed changes, so does its ETag, and the new story comes first
        feed_server.serve("/daily", rss([
            Entry("d1", "Serbia takes delivery of Chinese FK-3 air defence - Daily",
                  "https://www.wire.example/fk3/?utm_source=rss", BODY, now),
            Entry("d2", "Serbian drones fly at parade", "https://daily.example/parade",
                  "Serbia flew CH-92A drones over Nis.", now),
        ]))  # fmt: skip
        cli(cfg, "poll")
        second = http.get("/topics/arms.atom", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
        body = second.content

    parsed = feedparser.parse(body, response_headers={"content-type": second.headers["content-type"]})
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == feed_id("arms") and parsed.feed.title == "Watcher: arms"
    assert parsed.feed.updated_parsed is not None
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == [f"{base}/topics/arms.atom"]

    hits = json_lines(cfg, "hits", "--topic", "arms")
    assert len(hits) == 3
    newest_first = hits[::-1]  # `watcher hits` lists oldest first
    assert newest_first[0]["title"] == "Serbian drones fly at parade"
    assert [(e.id, e.title, e.link) for e in parsed.entries] == [
        (entry_id("arms", h["story"]), h["title"], h["url"]) for h in newest_first
    ]
    by_id = {e.id: e for e in parsed.entries}
    for h in hits:
        e = by_id[entry_id("arms", h["story"])]
        assert [t.term for t in e.tags] == h["terms"]
        assert e.summary == h["snippet"].replace("**", "")  # the snippet as plain text, markers removed
        assert e.author == h["feed"]
        related = [link.href for link in e.links if link.rel == "related"]
        assert related == [c["url"] for c in h["also_seen"]]
        for c in h["also_seen"]:
            assert c["feed"] in e.content[0].value  # the other outlets are named for readers ignoring links

    # hostile text arrives as text: escaped in the XML, unchanged after parsing
    assert HOSTILE in [h["title"] for h in hits] and HOSTILE in [e.title for e in parsed.entries]
    assert b"<script>" not in body and b"<b>drones</b>" not in body
    assert len(parsed.entries) == 3 and "Weather" not in body.decode()


def test_atom_of_a_topic_without_hits_is_valid_and_stable(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {})
    with served(create_app(load_config(cfg))) as client:
        first = client.get("/topics/quiet.topic.atom")  # a dot in the name: the route takes the last ".atom"
        again = client.get("/topics/quiet.topic.atom")
    assert first.status_code == 200 and first.headers["etag"] == again.headers["etag"]
    parsed = feedparser.parse(first.content)
    assert parsed.bozo == 0 and parsed.entries == []
    assert parsed.feed.id == feed_id("quiet.topic") and parsed.feed.updated_parsed is not None


def test_unknown_topic_is_404_and_a_bad_limit_400(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {})
    with served(create_app(load_config(cfg))) as client:
        assert client.get("/topics/nope.atom").status_code == 404
        assert client.get("/topics/arms.atom?limit=0").status_code == 400
        assert client.get("/topics/arms.atom?limit=abc").status_code == 400
        assert client.get("/topics/arms.atom?limit=100000").status_code == 400
        index = client.get("/topics").json()
    assert [(t["name"], t["hits"]) for t in index["topics"]] == [("arms", 0), ("quiet.topic", 0)]
    assert index["topics"][0]["atom"] == f"{client.base_url}/topics/arms.atom"


def test_limit_keeps_the_newest_and_base_url_makes_links_absolute(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {}, '[serve]\nbase_url = "https://watch.example.org/desk/"\n')
    config = load_config(cfg)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with Store(config.database_path) as store, store.transaction():
        store.sync_feeds([("https://a.example/feed", "A")], t0)
        for n in range(5):
            item_guid = f"g{n}"
            story = store.insert_story(
                feed_url="https://a.example/feed", guid=item_guid, title=f"t{n}", now=t0
            )
            item = Item(guid=item_guid, title=f"Serbia story {n}", link=f"https://a.example/{n}")
            item_id = store.insert_item(
                feed_url="https://a.example/feed", item=item, canonical_url=None, content_hash=str(n),
                story_id=story, story_reason="first", story_score=None, now=t0 + timedelta(minutes=n),
            )  # fmt: skip
            store.add_hit(topic="arms", story_id=story, item_id=item_id, terms=["serbia"], snippet="Serbia",
                          backlog=False, now=t0 + timedelta(minutes=n))  # fmt: skip
    with served(create_app(config)) as client:
        parsed = feedparser.parse(client.get("/topics/arms.atom?limit=2").content)
    assert [e.title for e in parsed.entries] == ["Serbia story 4", "Serbia story 3"]
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
        "https://watch.example.org/desk/topics/arms.atom?limit=2"
    ]


def test_atom_drops_unsafe_links_and_characters_xml_forbids(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {}))
    topic = config.topic("arms")
    assert topic is not None
    also = ({"feed": "B <i>", "url": "javascript:alert(1)"}, {"feed": "C", "url": "https://c.example/x"})
    body = atom_feed(
        topic,
        [
            hit(url="javascript:alert(1)", title="A\x00B\x1f", also_seen=also),
            hit(id=2, story="s-2", title=""),
        ],
        self_url="http://h/topics/arms.atom",
    )
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    first, second = parsed.entries
    assert first.title == "AB" and second.title == "(untitled)"
    assert [link.href for link in first.links] == ["https://c.example/x"]
    assert "javascript" not in body.decode()
    assert "B &lt;i&gt;" in first.content[0].value and "<b>Serbia</b>" in first.content[0].value


# --- health ----------------------------------------------------------------------------------------------


def test_healthz_follows_the_last_cycle_and_the_cli_agrees(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {}, '[serve]\nhealth_max_age = "10m"\n')
    config = load_config(cfg)
    now = datetime.now(UTC)
    later = [now]
    with served(create_app(config, clock=lambda: later[0])) as client:
        never = client.get("/healthz")
        assert never.status_code == 503 and "never" in never.text
        cli(cfg, "health", code=1)
        with Store(config.database_path) as store, store.transaction():
            store.set_state("last_cycle", ts(now) or "")
        ok = client.get("/healthz")
        assert ok.status_code == 200 and ok.text.startswith("ok")
        assert cli(cfg, "health").stdout.startswith("ok: last poll cycle")
        later[0] = now + timedelta(minutes=11)  # the daemon stopped ticking 11 minutes ago
        stale = client.get("/healthz")
    assert stale.status_code == 503 and stale.text.startswith("unhealthy: last poll cycle")
    cli(cfg, "health", "--max-age", "5m", code=0)  # the CLI's own clock: the cycle is seconds old
    assert "--max-age" in cli(cfg, "health", "--max-age", "soon", code=2).output


def test_liveness_fails_while_the_database_takes_no_writes(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    now = datetime.now(UTC)
    with Store(db) as store:
        with store.transaction():
            store.set_state("last_cycle", ts(now) or "")
        assert check_liveness(store, now, 60).ok
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the probe's patience
        try:
            state = check_liveness(store, now, 60, timeout=0.2)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert not state.ok and "not writable" in state.detail
        assert check_liveness(store, now, 60).ok  # the probe restored the store's own busy timeout


# --- metrics ---------------------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_report_feeds_hits_deliveries_and_the_daemons_counters(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    feed_server.serve("/ok", rss([Entry("o1", "Serbia buys FK-3", "https://ok.example/1", BODY, now),
                                  Entry("o2", "Serbia flies drones", "https://ok.example/2", "x", now)]))  # fmt: skip
    feed_server.status("/broken", 500)
    feed_server.status("/gone", 410)
    feeds = {n: feed_server.url(f"/{n}") for n in ("ok", "broken", "gone")}
    cfg = write_config(tmp_path, feeds)
    cli(cfg, "poll")
    config = load_config(cfg)
    with Store(config.database_path) as store, store.transaction():
        store.bump_state({"polls_total": 3, "poll_failures_total": 1, "items_stored_total": 2})
        store.bump_state({"polls_total": 3, "hits_total": 2})
        store.set_state("last_cycle_seconds", "1.250")
        store.set_state("last_cycle", ts(now) or "")
    with served(create_app(config)) as client:
        page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    got = samples(page.text)
    assert got[("watcher_feed_polls_total", ())] == 6
    assert got[("watcher_feed_poll_failures_total", ())] == 1
    assert got[("watcher_items_stored_total", ())] == 2
    assert got[("watcher_hits_total", ())] == 2
    for status, n in {"ok": 1, "error": 1, "gone": 1, "never": 0, "not-modified": 0}.items():
        assert got[("watcher_feeds", (("status", status),))] == n
    assert got[("watcher_topic_hits", (("topic", "arms"),))] == 2
    assert got[("watcher_topic_hits", (("topic", "quiet.topic"),))] == 0
    assert got[("watcher_deliveries", (("channel", "log"), ("status", "pending")))] == 2
    assert got[("watcher_deliveries", (("channel", "log"), ("status", "sent")))] == 0
    assert got[("watcher_last_cycle_duration_seconds", ())] == 1.25
    assert got[("watcher_last_cycle_timestamp_seconds", ())] == int(now.timestamp())

    cli(cfg, "digest")  # the deliveries go out: the gauges follow the table
    with served(create_app(config)) as client:
        got = samples(client.get("/metrics").text)
    assert got[("watcher_deliveries", (("channel", "log"), ("status", "sent")))] == 2
    assert got[("watcher_deliveries", (("channel", "log"), ("status", "pending")))] == 0


# --- the processes ---------------------------------------------------------------------------------------

SERVING = re.compile(r"serving HTTP on (http://\S+)")


class Watcher:
    """`python -m watcher ARGS` with its log read line by line. Unlike tests/daemonproc.py it closes its pipe
    and joins its reader, so no unclosed file is left for the garbage collector to report in a later test."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.log.append(line)
                self.lines.put(line)

    def url(self) -> str:
        """The address from the "serving HTTP on" line (port 0 in the config: the OS picked one)."""
        while (match := SERVING.search(self.lines.get(timeout=30))) is None:
            pass
        return match.group(1)

    def wait_for(self, fragment: str) -> None:
        while fragment not in self.lines.get(timeout=30):
            pass

    def stop(self) -> int:
        """SIGTERM, then the exit code; kills it if it does not exit."""
        try:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._reader.join(timeout=10)


def test_daemon_serves_while_it_runs_and_still_stops_on_sigterm(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    feed_server.serve("/a", rss([Entry("a1", "Serbia buys FK-3 air defence", "https://x.example/a1", BODY, now),
                                 Entry("a2", "Weather", "https://x.example/a2", "sunny", now)]))  # fmt: skip
    cfg = write_config(tmp_path, {"A": feed_server.url("/a")}, "[serve]\nenabled = true\nport = 0\n")
    daemon = Watcher(cfg, "run", "--tick", "0.2", "--grace", "1")
    try:
        url = daemon.url()
        daemon.wait_for("cycle: 1 feeds polled")
        with httpx.Client(base_url=url, timeout=10) as http:
            health = http.get("/healthz")
            assert health.status_code == 200, health.text
            got = samples(http.get("/metrics").text)
            parsed = feedparser.parse(http.get("/topics/arms.atom").content)
    finally:
        code = daemon.stop()
    assert code == 0, "".join(daemon.log)
    assert any("watcher daemon stopped" in line for line in daemon.log)
    assert got[("watcher_feed_polls_total", ())] >= 1
    assert got[("watcher_items_stored_total", ())] == 2
    assert got[("watcher_hits_total", ())] == 1
    assert (
        got[("watcher_feeds", (("status", "ok"),))] + got[("watcher_feeds", (("status", "not-modified"),))]
        == 1
    )
    assert got[("watcher_last_cycle_duration_seconds", ())] >= 0
    assert [e.title for e in parsed.entries] == ["Serbia buys FK-3 air defence"]


def test_daemon_refuses_to_start_on_a_taken_port(tmp_path: Path) -> None:
    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path, {}, f"[serve]\nenabled = true\nport = {port}\n")
        result = subprocess.run(
            [sys.executable, "-m", "watcher", "--config", str(cfg), "run"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in result.stderr


def test_watcher_serve_answers_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {})
    server = Watcher(cfg, "serve", "--port", "0")
    try:
        with httpx.Client(base_url=server.url(), timeout=10) as http:
            index = http.get("/").json()
            assert http.get("/healthz").status_code == 503  # no daemon has ever polled this database
    finally:
        code = server.stop()
    assert code == 0, "".join(server.log)
    assert [t["name"] for t in index["topics"]] == ["arms", "quiet.topic"]


@pytest.mark.parametrize("path", ["/", "/topics", "/healthz", "/metrics", "/topics/arms.atom"])
def test_every_endpoint_answers_head(tmp_path: Path, path: str) -> None:
    with served(create_app(load_config(write_config(tmp_path, {})))) as client:
        assert client.head(path).status_code in (200, 503)
