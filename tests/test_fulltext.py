"""Full text: article pages fetched for new items, boilerplate kept out of matching, failures fall back.

The pages in tests/data/fulltext/ are written for these tests: a news article about Serbia's FK-3 air defence
whose navigation, cookie banner, "Latest stories" sidebar (Tesla recall, BMW EV), related links, comments and
footer all mention Tesla; a div-soup Serbian page in windows-1250; and a page with no article at all.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedRequestHandler, FeedServer
from watcher.config import load_config
from watcher.fetch import Fetcher
from watcher.fulltext import FALLBACK, OK, FullText, extract_text, fetch_full_texts
from watcher.models import FetchResult, FetchSettings, FetchStatus, Item
from watcher.pipeline import Runtime, poll_feed, sync_feeds
from watcher.store import Store

DATA = Path(__file__).resolve().parent / "data" / "fulltext"
ARTICLE = (DATA / "article.html").read_bytes()
ARTICLE_DIVS = (DATA / "article-divs.html").read_bytes()  # windows-1250, declared in <meta> only
NO_ARTICLE = (DATA / "no-article.html").read_bytes()
BOILERPLATE_WORDS = ("Tesla", "BMW", "cookie", "Comments", "Related", "Latest stories", "rights reserved",
                     "Newsletter", "Share on", "Pročitajte", "Komentari", "Najnovije", "Reklama")  # fmt: skip
NOW = datetime.now(UTC)
PUBLIC_FEED = "http://93.184.216.34/feed.xml"  # a public address: choosing it chooses no private zone
HTML = "text/html; charset=utf-8"


# --- extraction (pure) --------------------------------------------------------------------------------


def test_article_body_is_kept_and_every_kind_of_boilerplate_dropped() -> None:
    got = extract_text(ARTICLE, "https://bdr.example/defence/fk3", HTML)
    assert got.status == OK and got.error is None
    assert "first battery of the Chinese-made FK-3 medium-range air defence" in got.text
    assert "additional batteries could follow" in got.text  # the last paragraph too
    assert "Miloš Vučević" in got.text
    for word in BOILERPLATE_WORDS:
        assert word not in got.text, word


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=windows-1250", None])
def test_legacy_charset_page_from_meta_or_header(content_type: str | None) -> None:
    got = extract_text(ARTICLE_DIVS, "https://dnevni.example/vesti/dronovi", content_type)
    assert got.status == OK
    assert "saopštilo je Ministarstvo odbrane" in got.text
    assert "protivvazduhoplovne odbrane FK-3" in got.text
    for word in ("Tesl", "BMW", "kolačić", "Pera", "Podeli"):
        assert word not in got.text, word


def test_header_charset_wins_over_guessing() -> None:
    page = "<html><body><article><p>" + "Beograd i Niš: čvrsta odbrana neba nad Srbijom. " * 8 + "</p>"
    got = extract_text((page + "</article></body></html>").encode("cp1250"), "https://x.example/a",
                       "text/html; charset=windows-1250")  # fmt: skip
    assert got.status == OK and "čvrsta odbrana" in got.text and "Niš" in got.text


def test_page_without_an_article_falls_back() -> None:
    got = extract_text(NO_ARTICLE, "https://bdr.example/video/1", HTML)
    assert got == FullText(FALLBACK, error="no article text found on the page")


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"%PDF-1.7 ...", "application/pdf", "not an HTML page (application/pdf)"),
        (b"\x89PNG\r\n", "image/png", "not an HTML page (image/png)"),
        (b'{"a": 1}', "application/json; charset=utf-8", "not an HTML page (application/json)"),
        (b"  \n ", "text/html", "the page is empty"),
    ],
)
def test_non_html_and_empty_pages_fall_back(body: bytes, content_type: str, error: str) -> None:
    assert extract_text(body, "https://x.example/a", content_type) == FullText(FALLBACK, error=error)


def test_control_characters_never_reach_the_text() -> None:
    # \x02 and \x03 are the snippet markers: a page must not be able to forge a highlighted match.
    page = b"<html><body><article><p>" + b"Serbia \x02FK-3\x03 air defence arrived in Belgrade today. " * 6
    got = extract_text(page + b"</p></article></body></html>", "https://x.example/a", "text/html")
    assert got.status == OK and "FK-3" in got.text
    assert "\x02" not in got.text and "\x03" not in got.text


# --- the page fetch: same bounds as feeds, address zone of the feed ---------------------------------


def _fetch_page(
    url: str, zone_url: str, *, allow_private: bool = False, timeout: float = 10.0
) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher() as f:
            settings = FetchSettings(timeout=timeout, allow_private=allow_private)
            return await f.fetch_page(url, settings=settings, zone_url=zone_url)

    return asyncio.run(go())


def test_page_on_loopback_is_refused_unless_the_feed_chose_that_zone_or_private_is_allowed(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/a", ARTICLE, HTML)
    refused = _fetch_page(feed_server.url("/a"), zone_url=PUBLIC_FEED)
    assert refused.status == FetchStatus.ERROR and refused.error_kind == "private-address"
    assert refused.error == "loopback address 127.0.0.1 refused"
    assert feed_server.requests("/a") == []  # refused before connecting
    allowed = _fetch_page(feed_server.url("/a"), zone_url=PUBLIC_FEED, allow_private=True)
    assert allowed.status == FetchStatus.OK and allowed.body == ARTICLE
    same_zone = _fetch_page(feed_server.url("/a"), zone_url=feed_server.url("/feed.xml"))
    assert same_zone.status == FetchStatus.OK
    sent = feed_server.requests("/a")[-1].headers
    assert sent["accept"].startswith("text/html")
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_page_redirect_out_of_the_feeds_zone_is_refused(feed_server: FeedServer) -> None:
    feed_server.redirect("/moved", "http://10.0.0.1/article", 302)
    got = _fetch_page(feed_server.url("/moved"), zone_url=feed_server.url("/feed.xml"))
    assert got.status == FetchStatus.ERROR
    assert got.error == "redirect to private address 10.0.0.1 refused"


# --- the stage: many pages, bounded ---------------------------------------------------------------------


def _items(srv: FeedServer, n: int, path: str = "/p") -> list[Item]:
    return [Item(guid=f"g{i}", title=f"t{i}", link=srv.url(f"{path}{i}"), summary="s") for i in range(n)]


def _stage(
    items: list[Item],
    zone_url: str,
    *,
    limit: int,
    per_host: int = 4,
    timeout: float = 10.0,
    budget: float | None = None,
    skip: Callable[[Item], str | None] = lambda _item: None,
) -> dict[str, FullText]:
    async def go() -> dict[str, FullText]:
        async with Fetcher(per_host=per_host) as f:
            settings = FetchSettings(timeout=timeout)
            return await fetch_full_texts(
                f, items, settings=settings, zone_url=zone_url, limit=limit, budget=budget, skip=skip
            )

    return asyncio.run(go())


def test_pages_of_one_feed_run_concurrently_up_to_the_per_host_limit(feed_server: FeedServer) -> None:
    lock = threading.Lock()
    inflight = [0, 0]  # now, most ever
    crowded = threading.Event()  # three at once would break the per-host limit of two

    def page(h: FeedRequestHandler) -> None:
        with lock:
            inflight[0] += 1
            inflight[1] = max(inflight)
            if inflight[0] > 2:
                crowded.set()
        crowded.wait(0.3)  # hold the slot, so a limit that let a third in would be seen
        with lock:
            inflight[0] -= 1
        h.respond(200, ARTICLE, content_type=HTML)

    for i in range(4):
        feed_server.handler(f"/p{i}", page)
    got = _stage(_items(feed_server, 4), feed_server.url("/feed"), per_host=2, limit=50)
    assert {g.status for g in got.values()} == {OK}
    assert inflight[1] == 2  # concurrent, and never more than the per-host limit


def test_at_most_full_text_max_pages_per_poll(feed_server: FeedServer) -> None:
    for i in range(5):
        feed_server.serve(f"/p{i}", ARTICLE, HTML)
    got = _stage(_items(feed_server, 5), feed_server.url("/feed"), limit=2)
    assert [got[f"g{i}"].status for i in range(5)] == [OK, OK, FALLBACK, FALLBACK, FALLBACK]
    assert got["g4"].error == "not fetched: more than 2 new items in one poll (full_text_max)"
    assert sum(len(feed_server.requests(f"/p{i}")) for i in range(5)) == 2


def test_each_failure_says_why(feed_server: FeedServer) -> None:
    feed_server.serve("/p0", ARTICLE, HTML)
    feed_server.status("/p1", 404, b"<html><body>Not found</body></html>")
    feed_server.serve("/p2", b"\x89PNG\r\n\x1a\n", "image/png")
    feed_server.serve("/p3", NO_ARTICLE, HTML)
    feed_server.status("/p4", 410)
    items = [*_items(feed_server, 5), Item(guid="nolink", title="t", summary="s"),
             Item(guid="old", title="t", link=feed_server.url("/p0"), summary="s")]  # fmt: skip
    got = _stage(items, feed_server.url("/feed"), limit=50,
                 skip=lambda i: "not fetched: backlog" if i.guid == "old" else None)  # fmt: skip
    assert got["g0"].status == OK
    assert {k: v.error for k, v in got.items() if k != "g0"} == {
        "g1": "article page: HTTP 404 Not Found",
        "g2": "not an HTML page (image/png)",
        "g3": "no article text found on the page",
        "g4": "article page: HTTP 410 Gone",
        "nolink": "the item has no link",
        "old": "not fetched: backlog",
    }
    assert {v.status for k, v in got.items() if k != "g0"} == {FALLBACK}
    assert len(feed_server.requests("/p0")) == 1  # the skipped item's page was never asked for


def test_a_hanging_page_costs_its_deadline_and_the_phase_its_budget(feed_server: FeedServer) -> None:
    feed_server.hang("/p0")
    feed_server.serve("/p1", ARTICLE, HTML)
    got = _stage(_items(feed_server, 2), feed_server.url("/feed"), limit=50, timeout=0.5)
    assert got["g0"].error is not None and got["g0"].error.startswith("article page: timed out after 0.5s")
    assert got["g1"].status == OK
    got = _stage(_items(feed_server, 2), feed_server.url("/feed"), limit=50, timeout=30, budget=0.5)
    assert got["g0"].error == "not fetched within the feed's full-text budget of 0.5s"
    assert got["g1"].status == OK


def test_a_cancelled_poll_leaves_no_page_fetch_running(feed_server: FeedServer) -> None:
    feed_server.hang("/p0")

    async def go() -> set[asyncio.Task[object]]:
        async with Fetcher() as f:
            stage = asyncio.ensure_future(
                fetch_full_texts(f, _items(feed_server, 1), settings=FetchSettings(timeout=30),
                                 zone_url=feed_server.url("/feed"), limit=50)
            )  # fmt: skip
            await asyncio.to_thread(feed_server.wait_requests, "/p0")
            stage.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stage
            return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(go()) == set()


# --- end to end through `watcher poll` ------------------------------------------------------------------


def _config(tmp_path: Path, feeds: str, *, full_text: str = "full_text = true") -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n{feeds.replace("FULL_TEXT", full_text)}\n'
        "[[topics]]\nname = \"air-defence\"\nquery = 'FK-3 AND (Serbia OR Srbija)'\n"
        "[[topics]]\nname = \"cars\"\nquery = 'Tesla OR BMW OR kolačić* OR cookie*'\n",
        encoding="utf-8",
    )
    return cfg


def _feed(srv: FeedServer, path: str = "/feed.xml") -> str:
    return f'[[feeds]]\nurl = "{srv.url(path)}"\nname = "bdr"\nFULL_TEXT\n'


def _entry(n: int, title: str, link: str, summary: str = "Belgrade's new shield arrives.",
           age: timedelta = timedelta(hours=1)) -> Entry:  # fmt: skip
    return Entry(f"id-{n}", title, link, summary, NOW - age)


def _rows(tmp_path: Path) -> dict[str, tuple[str | None, str | None, str | None]]:
    with sqlite3.connect(tmp_path / "w.db") as db:
        rows = db.execute("SELECT guid, full_text, full_text_status, full_text_error FROM items").fetchall()
    return {g: (t, s, e) for g, t, s, e in rows}


def test_topic_matches_the_article_body_and_never_the_sidebar(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.serve("/defence/fk3", ARTICLE, HTML)
    feed_server.serve("/vesti/dronovi", ARTICLE_DIVS, "text/html")
    feed_server.serve("/feed.xml", rss([
        _entry(1, "Belgrade's new shield", feed_server.url("/defence/fk3")),
        _entry(2, "Nova isporuka za vojsku", feed_server.url("/vesti/dronovi"), "Stigla je nova isporuka."),
    ]))  # fmt: skip
    cfg = _config(tmp_path, _feed(feed_server))
    assert "2 new items, 2 new hits" in cli(cfg, "poll").output
    hits = json_lines(cfg, "hits")
    assert sorted((h["topic"], h["guid"]) for h in hits) == [("air-defence", "id-1"), ("air-defence", "id-2")]
    assert {h["full_text"] for h in hits} == {"ok"} and {h["full_text_error"] for h in hits} == {None}
    assert any("\x02" in h["snippet"] or "FK" in h["snippet"] for h in hits)
    stored = _rows(tmp_path)
    assert "FK-3 medium-range air defence" in (stored["id-1"][0] or "")
    assert "Tesla" not in (stored["id-1"][0] or "")
    assert stored["id-1"][1:] == ("ok", None)
    backtest = cli(cfg, "backtest", "--topic", "air-defence").output
    assert "2 of 2 stored items match" in backtest  # backtests see the stored body too


def test_without_full_text_the_summary_alone_does_not_match(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/defence/fk3", ARTICLE, HTML)
    feed_server.serve("/feed.xml", rss([_entry(1, "Belgrade's new shield", feed_server.url("/defence/fk3"))]))
    cfg = _config(tmp_path, _feed(feed_server), full_text="")
    assert "1 new items, 0 new hits" in cli(cfg, "poll").output
    assert feed_server.requests("/defence/fk3") == []
    assert _rows(tmp_path)["id-1"] == (None, None, None)


def test_failures_fall_back_to_the_summary_and_say_so(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.status("/gone", 404)
    feed_server.serve("/photo.jpg", b"\xff\xd8\xff\xe0 jpeg", "image/jpeg")
    feed_server.serve("/video", NO_ARTICLE, HTML)
    feed_server.serve("/feed.xml", rss([
        _entry(1, "FK-3 launchers seen near Niš", feed_server.url("/gone"), "Serbia moved FK-3 launchers."),
        _entry(2, "Photo: FK-3 radar at Batajnica", feed_server.url("/photo.jpg"), "Serbia shows its FK-3 radar."),
        _entry(3, "Video: FK-3 crews train in Srbija", feed_server.url("/video"), "FK-3 training in Srbija."),
        # The feed is on loopback, so loopback links pass; another private network does not.
        _entry(4, "Intranet: FK-3 budget for Serbia", "http://10.255.255.1/fk3", "Serbia's FK-3 budget grows."),
    ]))  # fmt: skip
    cfg = _config(tmp_path, _feed(feed_server))
    cli(cfg, "poll")
    hits = {h["guid"]: h for h in json_lines(cfg, "hits", "--topic", "air-defence")}
    assert {g: (h["full_text"], h["full_text_error"]) for g, h in hits.items()} == {
        "id-1": ("fallback", "article page: HTTP 404 Not Found"),
        "id-2": ("fallback", "not an HTML page (image/jpeg)"),
        "id-3": ("fallback", "no article text found on the page"),
        "id-4": ("fallback", "article page: private address 10.255.255.1 refused"),
    }
    assert {row[0] for row in _rows(tmp_path).values()} == {None}  # the summary stands in; nothing stored


def test_only_new_items_are_fetched_never_seen_updated_or_backlog(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    for p in ("/a", "/b", "/old"):
        feed_server.serve(p, ARTICLE, HTML)
    a = _entry(1, "Belgrade's new shield", feed_server.url("/a"))
    old = _entry(3, "An old story", feed_server.url("/old"), age=timedelta(days=30))
    feed_server.serve("/feed.xml", rss([a, old]))
    cfg = _config(tmp_path, _feed(feed_server))
    cli(cfg, "poll")
    assert _rows(tmp_path)["id-3"][1:] == ("fallback", "not fetched: backlog of the feed's first poll")
    a_changed = _entry(1, "Belgrade's new shield, updated", feed_server.url("/a"))
    b = _entry(2, "Another shield", feed_server.url("/b"))
    feed_server.serve("/feed.xml", rss([a_changed, b, old]))
    assert "1 new, 1 updated" in cli(cfg, "poll").output
    assert [len(feed_server.requests(p)) for p in ("/a", "/b", "/old")] == [1, 1, 0]
    rows = _rows(tmp_path)
    assert rows["id-1"][1] == "ok" and "FK-3" in (rows["id-1"][0] or "")  # the update kept its article text
    assert rows["id-2"][1] == "ok"


def test_a_slow_article_does_not_hold_back_another_feed(feed_server: FeedServer, tmp_path: Path) -> None:
    gate = threading.Event()

    def slow(h: FeedRequestHandler) -> None:
        gate.wait(30)
        h.respond(200, ARTICLE, content_type=HTML)

    feed_server.handler("/slow", slow)
    feed_server.serve("/x.xml", rss([_entry(1, "Belgrade's new shield", feed_server.url("/slow"))]))
    feed_server.serve("/y.xml", rss([_entry(2, "Serbia's FK-3 battery on duty", "https://y.example/2",
                                            "Serbia put its FK-3 battery on duty.")]))  # fmt: skip
    feeds = (f'[[feeds]]\nurl = "{feed_server.url("/x.xml")}"\nfull_text = true\n'
             f'[[feeds]]\nurl = "{feed_server.url("/y.xml")}"\n')  # fmt: skip
    config = load_config(_config(tmp_path, feeds), environ={})
    x, y = config.feeds

    async def go() -> tuple[bool, int, int]:
        with Store(config.database_path) as store:
            async with Fetcher() as fetcher:
                rt = Runtime(config=config, store=store, fetcher=fetcher)
                sync_feeds(rt)
                slow_poll = asyncio.ensure_future(poll_feed(rt, x))
                other = await poll_feed(rt, y)
                still_waiting = not slow_poll.done()
                gate.set()
                return still_waiting, other.new_hits, (await slow_poll).new_hits

    still_waiting, y_hits, x_hits = asyncio.run(go())
    assert still_waiting and y_hits == 1 and x_hits == 1
