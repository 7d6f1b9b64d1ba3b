"""`watcher feeds add`: feed discovery against small sites served by the local feed server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.clihelp import cli
from tests.feedserver import FeedServer
from watcher.cli import main
from watcher.config import load_config
from watcher.discover import discover, feed_kind, probe_urls
from watcher.fetch import Fetcher
from watcher.htmltext import feed_links
from watcher.models import FetchSettings

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
EXPECTED = {
    name: json.loads((FEEDS / f"{name}.expected.json").read_text()) for name in ("rss2", "atom", "feed")
}
HTML = "text/html; charset=utf-8"


def _page(head: str = "", body: str = "<p>Welcome</p>") -> str:
    return f"<!doctype html><html><head><title>A site</title>{head}</head><body>{body}</body></html>"


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[watcher]\ndatabase = "{tmp_path.as_posix()}/w.db"\n{extra}', encoding="utf-8")
    return path


@pytest.fixture
def news_site(feed_server: FeedServer) -> FeedServer:
    """A home page advertising four feeds: RSS, Atom (relative href), a JSON Feed, and one that is gone."""
    links = (
        '<link rel="alternate" type="application/rss+xml" title="Main feed" href="/feed.xml">'
        '<link rel="stylesheet" href="/style.css">'
        '<link rel="alternate" type="application/atom+xml" href="atom/index.xml">'
        '<link rel="alternate" type="application/rss+xml" title="Old" href="/missing.xml">'
        f'<link rel="alternate" type="application/feed+json" href="{feed_server.url("/feed.json")}">'
        '<link rel="alternate" hreflang="sr" href="/sr/">'
    )
    feed_server.serve("/news/", _page(links), HTML)
    feed_server.serve("/feed.xml", FEEDS / "rss2.xml")
    feed_server.serve("/news/atom/index.xml", FEEDS / "atom.xml", "application/atom+xml")
    feed_server.serve("/feed.json", FEEDS / "feed.json", "application/feed+json")
    return feed_server


def test_lists_the_advertised_feeds_and_adds_the_picked_one(news_site: FeedServer, tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = cli(config, "feeds", "add", news_site.url("/news/"), "--pick", "2", "--tag", "world").stdout
    assert f"left out: {news_site.url('/missing.xml')}: HTTP 404 Not Found" in out
    assert "found 3 feed(s)" in out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert lines == [
        f"1. {EXPECTED['rss2']['title']} — RSS, 5 items — {news_site.url('/feed.xml')}  [link]",
        f"2. {EXPECTED['atom']['title']} — Atom, 3 items — {news_site.url('/news/atom/index.xml')}  [link]",
        f"3. {EXPECTED['feed']['title']} — JSON Feed, 3 items — {news_site.url('/feed.json')}  [link]",
    ]
    feeds = load_config(config).feeds
    assert [(f.url, f.name, f.tags) for f in feeds] == [
        (news_site.url("/news/atom/index.xml"), None, ("world",))
    ]
    assert not news_site.requests("/feed")  # feeds were advertised, so no path was probed


def test_asks_which_one_when_several_are_found(news_site: FeedServer, tmp_path: Path) -> None:
    config = _config(tmp_path)
    args = ["--config", str(config), "feeds", "add", news_site.url("/news/"), "--name", "JSON desk"]
    result = CliRunner().invoke(main, args, input="3\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "add which one?" in out
    assert [(f.url, f.name) for f in load_config(config).feeds] == [
        (news_site.url("/feed.json"), "JSON desk")
    ]


def test_yes_takes_the_first_and_dry_run_writes_nothing(news_site: FeedServer, tmp_path: Path) -> None:
    config = _config(tmp_path)
    before = config.read_bytes()
    out = cli(config, "feeds", "add", news_site.url("/news/"), "--yes", "--dry-run").stdout
    assert f"would add {news_site.url('/feed.xml')}" in out
    assert config.read_bytes() == before
    cli(config, "feeds", "add", news_site.url("/news/"), "--yes")
    assert [f.url for f in load_config(config).feeds] == [news_site.url("/feed.xml")]


def test_a_site_without_links_is_probed_at_the_usual_paths(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/", _page(), HTML)
    feed_server.serve("/feed", FEEDS / "rss2.xml")
    feed_server.serve("/rss", FEEDS / "rss2.xml")  # the same feed under a second path is listed once
    feed_server.serve("/index.xml", _page(), HTML)  # answers, but not with a feed
    config = _config(tmp_path)
    out = cli(config, "feeds", "add", feed_server.url("/")).stdout
    assert "found 1 feed(s)" in out
    assert f"— RSS, 5 items — {feed_server.url('/feed')}  [probe]" in out
    assert [f.url for f in load_config(config).feeds] == [feed_server.url("/feed")]
    assert feed_server.requests("/?feed=rss2")  # every usual path was tried


def test_a_page_in_a_folder_probes_the_folder_first(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/blog/", _page(), HTML)
    feed_server.serve("/blog/feed", FEEDS / "atom.xml", "application/atom+xml")
    config = _config(tmp_path)
    out = cli(config, "feeds", "add", feed_server.url("/blog/"), "--yes").stdout
    assert f"Atom, 3 items — {feed_server.url('/blog/feed')}" in out


def test_a_site_with_no_feed_fails_clearly(feed_server: FeedServer, tmp_path: Path) -> None:
    link = '<link rel="alternate" type="application/rss+xml" href="/broken.xml">'
    feed_server.serve("/", _page(link), HTML)
    feed_server.status("/broken.xml", 500)
    config = _config(tmp_path)
    before = config.read_bytes()
    result = cli(config, "feeds", "add", feed_server.url("/"), code=1)
    assert f"error: no feed found at {feed_server.url('/')}" in result.output
    assert "none of the usual paths (/feed, /rss.xml" in result.output
    assert f"{feed_server.url('/broken.xml')}: HTTP 500 Internal Server Error" in result.output
    assert config.read_bytes() == before


def test_an_unreachable_site_says_why(tmp_path: Path) -> None:
    with FeedServer() as gone:
        url = gone.url("/")
    result = cli(_config(tmp_path), "feeds", "add", url, code=1)
    assert "connection refused" in result.output


def test_a_feed_address_is_added_as_it_is(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.serve("/rss.xml", FEEDS / "rss2.xml")
    config = _config(tmp_path)
    out = cli(config, "feeds", "add", feed_server.url("/rss.xml"), "--name", "Vesti").stdout
    assert f"{feed_server.url('/rss.xml')} is a feed:" in out
    assert [(f.url, f.name) for f in load_config(config).feeds] == [(feed_server.url("/rss.xml"), "Vesti")]
    assert [r.path for r in feed_server.requests()] == ["/rss.xml"]


def test_a_permanent_redirect_is_followed_to_the_address_that_is_added(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.redirect("/old.xml", "/new.xml", 301)
    feed_server.serve("/new.xml", FEEDS / "rss2.xml")
    config = _config(tmp_path)
    cli(config, "feeds", "add", feed_server.url("/old.xml"))
    assert [f.url for f in load_config(config).feeds] == [feed_server.url("/new.xml")]


def test_a_configured_feed_is_not_fetched_again(feed_server: FeedServer, tmp_path: Path) -> None:
    url = feed_server.url("/feed.xml")
    config = _config(tmp_path, f'[[feeds]]\nurl = "{url}"\nname = "Have it"\n')
    out = cli(config, "feeds", "add", url.replace("/feed.xml", "/feed.xml/")).stdout
    assert f"already configured: 'Have it' ({url})" in out
    assert feed_server.requests() == []


def test_picking_a_configured_feed_adds_nothing(news_site: FeedServer, tmp_path: Path) -> None:
    config = _config(tmp_path, f'[[feeds]]\nurl = "{news_site.url("/feed.json")}"\n')
    before = config.read_bytes()
    out = cli(config, "feeds", "add", news_site.url("/news/"), "--pick", "3").stdout
    assert "(already configured)" in out
    assert "nothing added" in out
    assert config.read_bytes() == before
    assert (
        "only 3 feed(s)" in cli(config, "feeds", "add", news_site.url("/news/"), "--pick", "9", code=1).output
    )


@pytest.mark.anyio
async def test_discover_library_call(news_site: FeedServer) -> None:
    async with Fetcher() as f:
        d = await discover(news_site.url("/news/"), f, FetchSettings(timeout=10), now=datetime.now(UTC))
    assert [(x.kind, x.items, x.via) for x in d.feeds] == [
        ("RSS", 5, "link"),
        ("Atom", 3, "link"),
        ("JSON Feed", 3, "link"),
    ]
    assert d.page_error is None


# --- pure parts ------------------------------------------------------------------------------------


def test_feed_links_resolve_relative_and_base_hrefs() -> None:
    html = (
        b'<html><head><base href="https://cdn.example/site/">'
        b'<link rel="alternate" type="application/rss+xml" title=" Main\n feed " href="rss.xml">'
        b'<LINK REL="Alternate Feed" TYPE="application/atom+xml; charset=utf-8" HREF="/atom">'
        b'<link rel="alternate" type="application/rss+xml" href="rss.xml">'  # repeated: listed once
        b'<link rel="alternate" type="text/html" href="/other">'
        b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        b"</head></html>"
    )
    links = feed_links(html, "https://example.org/page")
    assert [(x.url, x.type, x.title) for x in links] == [
        ("https://cdn.example/site/rss.xml", "application/rss+xml", "Main feed"),
        ("https://cdn.example/atom", "application/atom+xml", ""),
    ]


@pytest.mark.parametrize(
    ("url", "first", "count"),
    [
        ("https://example.org/", "https://example.org/feed", 11),
        ("https://example.org", "https://example.org/feed", 11),
        ("https://example.org/blog/post-1", "https://example.org/blog/feed", 22),
    ],
)
def test_probe_urls(url: str, first: str, count: int) -> None:
    urls = probe_urls(url)
    assert urls[0] == first
    assert len(urls) == len(set(urls)) == count
    assert "https://example.org/?feed=rss2" in urls


@pytest.mark.parametrize(
    ("body", "hint", "kind"),
    [
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- c --><rss version="2.0">', "", "RSS"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom">', "", "Atom"),
        (b'<rdf:RDF xmlns:rdf="x">', "", "RDF"),
        (b' {"version": "https://jsonfeed.org/version/1.1"}', "", "JSON Feed"),
        (b"<something/>", "application/atom+xml", "Atom"),
    ],
)
def test_feed_kind(body: bytes, hint: str, kind: str) -> None:
    assert feed_kind(body, hint) == kind
