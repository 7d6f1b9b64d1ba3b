"""The foundation end to end: feeds in four formats from a real local server, polled through the CLI."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, atom, json_feed, rdf, rss
from tests.feedserver import FeedServer

NOW = datetime.now(UTC)


def entry(n: int, title: str, summary: str, *, age: timedelta = timedelta(hours=1)) -> Entry:
    return Entry(f"id-{n}", title, f"https://news.example/{n}", summary, NOW - age)


def write_config(tmp_path: Path, srv: FeedServer, paths: list[str], query: str) -> Path:
    feeds = "".join(f'[[feeds]]\nurl = "{srv.url(p)}"\nname = "{p.strip("/")}"\n' for p in paths)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{feeds}'
        f"[[topics]]\nname = \"arms\"\nquery = '{query}'\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def four_feeds(feed_server: FeedServer, tmp_path: Path) -> Path:
    feed_server.serve(
        "/rss",
        rss(
            [
                entry(1, "Serbia buys Chinese drones", "CH-92A drones for Belgrade"),
                entry(2, "Football results", "Partizan won"),
            ]
        ),
    )
    feed_server.serve(
        "/atom",
        atom(
            [
                entry(3, "Vučić: kineski dronovi stižu", "Srbija nabavlja dronove"),
                entry(4, "Weather", "Sunny"),
            ]
        ),
        "application/atom+xml",
    )
    feed_server.serve(
        "/rdf", rdf([entry(5, "Србија купује дронове", "Вучић о дроновима из Кине")]), "application/rdf+xml"
    )
    feed_server.serve("/json", json_feed([entry(6, "Markets", "Stocks <b>fell</b>"),
                                          entry(7, "Serbia shows drones", "A parade of drones in Serbia")]),
                      "application/feed+json")  # fmt: skip
    return write_config(tmp_path, feed_server, ["/rss", "/atom", "/rdf", "/json"],
                        "(Serbia OR Srbija) AND (drone* OR dron*)")  # fmt: skip


def test_poll_stores_hits_then_conditional_requests_add_nothing(
    feed_server: FeedServer, four_feeds: Path
) -> None:
    out = cli(four_feeds, "poll").output
    assert "polled 4 feeds" in out
    hits = json_lines(four_feeds, "hits")
    # RDF items have no guid: their link is their id
    assert sorted(h["guid"] for h in hits) == ["https://news.example/5", "id-1", "id-3", "id-7"]
    for h in hits:
        assert set(h) >= {"topic", "title", "url", "feed", "guid", "published", "story", "also_seen"}
        assert h["topic"] == "arms" and h["backlog"] is False
        assert datetime.fromisoformat(h["published"]).tzinfo is not None
    assert {h["feed"] for h in hits} == {"rss", "atom", "rdf", "json"}
    assert len({h["story"] for h in hits}) == 4
    feeds = {f["name"]: f for f in json_lines(four_feeds, "feeds")}
    assert {f["status"] for f in feeds.values()} == {"ok"}
    assert feeds["rss"]["items"] == 2

    cli(four_feeds, "poll")
    for path in ("/rss", "/atom", "/rdf", "/json"):
        second = feed_server.requests(path)[-1]
        assert "if-none-match" in second.headers, path  # conditional
    feeds = json_lines(four_feeds, "feeds")
    assert {f["status"] for f in feeds} == {"not-modified"}
    assert len(json_lines(four_feeds, "hits")) == 4

    # a changed feed adds only its new items
    feed_server.serve("/rss", rss([entry(8, "Serbia tests Chinese drones", "More drones"),
                                   entry(1, "Serbia buys Chinese drones", "CH-92A drones for Belgrade"),
                                   entry(2, "Football results", "Partizan won")]))  # fmt: skip
    out = cli(four_feeds, "poll").output
    assert "1 new items, 1 new hits" in out
    assert sorted(h["guid"] for h in json_lines(four_feeds, "hits")) == [
        "https://news.example/5",
        "id-1",
        "id-3",
        "id-7",
        "id-8",
    ]


def test_broken_feeds_are_reported_and_others_stored(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/good", rss([entry(1, "Serbia drones", "drones")]))
    feed_server.status("/error", 500, b"boom")
    feed_server.garbage("/garbage")
    feed_server.status("/missing", 404)
    cfg = write_config(tmp_path, feed_server, ["/good", "/error", "/garbage", "/missing"], "Serbia")
    result = cli(cfg, "poll")
    assert "3 failed" in result.output
    feeds = {f["name"]: f for f in json_lines(cfg, "feeds")}
    assert feeds["good"]["status"] == "ok" and feeds["good"]["items"] == 1
    assert feeds["error"]["status"] == "error" and "500" in feeds["error"]["last_error"]
    assert feeds["missing"]["status"] == "error" and "404" in feeds["missing"]["last_error"]
    assert feeds["garbage"]["status"] == "error" and feeds["garbage"]["last_error"]
    assert all(feeds[n]["failures"] == 1 for n in ("error", "garbage", "missing"))
    assert [h["guid"] for h in json_lines(cfg, "hits")] == ["id-1"]


def test_first_poll_flood_guard_marks_old_items_backlog(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve(
        "/f", rss([entry(1, "Serbia today", "x"), entry(2, "Serbia last week", "x", age=timedelta(days=7))])
    )
    cfg = write_config(tmp_path, feed_server, ["/f"], "Serbia")
    cli(cfg, "poll")
    hits = {h["guid"]: h for h in json_lines(cfg, "hits")}
    assert hits["id-1"]["backlog"] is False
    assert hits["id-2"]["backlog"] is True
    # after the first poll, even an old-dated new item is a real hit
    feed_server.serve("/f", rss([entry(3, "Serbia archive", "x", age=timedelta(days=30)),
                                 entry(1, "Serbia today", "x"), entry(2, "Serbia last week", "x", age=timedelta(days=7))]))  # fmt: skip
    cli(cfg, "poll")
    assert {h["guid"]: h["backlog"] for h in json_lines(cfg, "hits")}["id-3"] is False
    assert "id-2" not in [h["guid"] for h in json_lines(cfg, "hits") if not h["backlog"]]
    assert sorted(h["guid"] for h in json_lines(cfg, "hits", "--no-backlog")) == ["id-1", "id-3"]


def test_changed_title_updates_item_without_new_hit(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/f", rss([entry(1, "Serbia buys drones", "first version")]))
    cfg = write_config(tmp_path, feed_server, ["/f"], "Serbia")
    cli(cfg, "poll")
    feed_server.serve("/f", rss([entry(1, "Serbia buys more drones (updated)", "second version")]))
    out = cli(cfg, "poll").output
    assert "0 new items" in out and "1 updated" in out
    hits = json_lines(cfg, "hits")
    assert len(hits) == 1
    assert hits[0]["title"] == "Serbia buys more drones (updated)"
    with sqlite3.connect(tmp_path / "w.db") as db:  # the stored history keeps the previous title
        assert db.execute("SELECT old_title FROM item_history").fetchall() == [("Serbia buys drones",)]


def test_lying_validators_do_not_hide_items_forever(feed_server: FeedServer, tmp_path: Path) -> None:
    """A server that answers 304 although the feed changed: the periodic unconditional fetch finds the item."""
    route = feed_server.serve("/f", rss([entry(1, "Serbia one", "x")]), lying=True, headers={"ETag": '"v1"'})
    cfg = write_config(tmp_path, feed_server, ["/f"], "Serbia")
    cli(cfg, "poll")
    route.body = rss([entry(2, "Serbia two", "x"), entry(1, "Serbia one", "x")]).encode()
    cli(cfg, "poll")  # conditional: the lying server says 304
    assert "if-none-match" in feed_server.requests("/f")[-1].headers
    assert [h["guid"] for h in json_lines(cfg, "hits")] == ["id-1"]
    with sqlite3.connect(tmp_path / "w.db") as db:  # pretend the unconditional period has passed
        db.execute("UPDATE feeds SET last_unconditional = '2000-01-01T00:00:00+00:00'")
    cli(cfg, "poll")
    assert "if-none-match" not in feed_server.requests("/f")[-1].headers
    assert sorted(h["guid"] for h in json_lines(cfg, "hits")) == ["id-1", "id-2"]


def test_unchanged_body_is_not_parsed_again(feed_server: FeedServer, tmp_path: Path) -> None:
    """A server without validators: the body hash tells that nothing changed."""
    feed_server.serve("/f", rss([entry(1, "Serbia", "x")]), validators=False)
    cfg = write_config(tmp_path, feed_server, ["/f"], "Serbia")
    cli(cfg, "poll")
    cli(cfg, "poll")
    assert [f["status"] for f in json_lines(cfg, "feeds")] == ["not-modified"]
