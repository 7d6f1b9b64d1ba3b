"""One `watcher poll` of many hostile feeds mixed with healthy ones, as a user runs it.

Every hostile server costs a bounded amount (the 3 s deadline, the size cap), leaves a specific error on its
feed, and never stops the healthy feeds; hostile *content* is stored as plain text and reaches a digest only
escaped. ``hostile_mix`` is shared with ``bench/bench_hostile.py``, which times the same poll and measures
its memory; this test asserts outcomes, never timings.

Slow servers are spread over several local servers (several "hosts"), as they would be in the wild, so the
per-host limit does not queue healthy feeds behind them.
"""

from __future__ import annotations

import email
import itertools
import json
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.clihelp import cli, json_lines
from tests.daemonproc import DaemonProcess
from tests.feedmaker import Entry, atom, json_feed, rdf, rss
from tests.feedserver import FeedRequestHandler, FeedServer
from tests.test_fetch_hostile import zeros_bomb

MB = 1 << 20
NOW = datetime.now(UTC)
FETCH_TIMEOUT = 3.0
HEALTHY = 20
HEALTHY_ITEMS = 10
HOSTS = 4  # local servers standing in for distinct hosts


def _xml(items: str | bytes, *, encoding: str = "utf-8", prolog: bytes = b"") -> bytes:
    body = items.encode() if isinstance(items, str) else items
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>'.encode()
        + prolog
        + b'<rss version="2.0"><channel><title>Hostile</title><link>http://hostile.example/</link>'
        + b"<description>d</description>"
        + body
        + b"</channel></rss>"
    )


def _date(when: datetime = NOW) -> str:
    return email.utils.format_datetime(when - timedelta(minutes=30))


def _item(guid: str, title: str | bytes, extra: str = "") -> bytes:
    t = title.encode() if isinstance(title, str) else title
    return (
        b"<item><guid isPermaLink='false'>" + guid.encode() + b"</guid><title>" + t + b"</title>"
        b"<link>https://hostile.example/" + guid.encode() + b"</link>"
        b"<pubDate>" + _date().encode() + b"</pubDate>" + extra.encode() + b"</item>"
    )


@dataclass(frozen=True)
class Case:
    """One feed of the mix: how to serve it, and what `watcher feeds` must then say about it."""

    name: str
    setup: Callable[[FeedServer, str], str]  # installs routes under the path; returns the feed's URL
    status: str = "error"  # expected `watcher feeds` status
    words: tuple[str, ...] = ()  # each must appear in last_error (case-insensitive)
    hostile: bool = True


def _serve(body: bytes | str, content_type: str = "application/rss+xml") -> Callable[[FeedServer, str], str]:
    def setup(srv: FeedServer, path: str) -> str:
        srv.serve(path, body, content_type, validators=False)
        return srv.url(path)

    return setup


def _late_headers(srv: FeedServer, path: str) -> str:
    def late(h: FeedRequestHandler) -> None:
        if not h.wait(60):  # released when the server closes, long after the client gave up
            h.respond(200, _xml(""))

    srv.handler(path, late)
    return srv.url(path)


def _via(fn: Callable[[FeedServer, str], object]) -> Callable[[FeedServer, str], str]:
    def setup(srv: FeedServer, path: str) -> str:
        fn(srv, path)
        return srv.url(path)

    return setup


def _loop(srv: FeedServer, path: str) -> str:
    srv.redirect(path, path + "/b", 302)
    srv.redirect(path + "/b", path, 302)
    return srv.url(path)


def _chain(srv: FeedServer, path: str) -> str:
    hops = [f"{path}/{i}" for i in range(8)]
    srv.redirect(path, hops[0], 301)
    for a, b in itertools.pairwise(hops):
        srv.redirect(a, b, 302)
    srv.serve(hops[-1], _xml(_item("c", "end of the chain")))
    return srv.url(path)


def _refused(srv: FeedServer, path: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def _brotli_bomb(srv: FeedServer, path: str) -> str:
    import brotli  # type: ignore[import-untyped, unused-ignore]

    srv.raw(path, brotli.compress(bytes(32 * MB), quality=5), content_encoding="br")
    return srv.url(path)


_SCRIPTS = _xml(
    _item("s1", "&lt;script&gt;alert(1)&lt;/script&gt;Serbia <b>bold</b> news")
    + _item("s2", "&amp;lt;script&amp;gt;steal()&amp;lt;/script&amp;gt; Serbia quoted markup",
            "<description>&lt;img src=x onerror=alert(2)&gt;&lt;a href='javascript:alert(3)'&gt;click&lt;/a&gt;"
            "&lt;iframe src='http://evil.example/'&gt;&lt;/iframe&gt;text</description>")
    + _item("s3", "<![CDATA[<i>Serbia</i> <svg onload=alert(4)>cdata</svg>]]>",
            "<description><![CDATA[<p style='x'>para<script>evil()</script></p>]]></description>")
)  # fmt: skip
_ODD = _xml(
    "<item><guid>far-future</guid><title>Serbia far future</title><pubDate>Tue, 01 Jan 2999 00:00:00 GMT</pubDate></item>"
    "<item><guid>ancient</guid><title>Serbia ancient</title><pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate></item>"
    "<item><guid>no-title</guid><description>Serbia without a title</description></item>"
    "<item><title>Serbia without link or guid</title></item>"
    "<item><link>https://hostile.example/only-link</link></item>"
    "<item></item>"
)  # fmt: skip
_LAUGHS = (
    b"<!DOCTYPE rss [<!ENTITY lol 'lol'>"
    + b"".join(
        b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>"
)
_XXE = (
    b"<!DOCTYPE rss [<!ENTITY xxe SYSTEM 'file:///etc/passwd'><!ENTITY http SYSTEM 'http://127.0.0.1:9/x'>]>"
)
_HTML = (
    b"<!doctype html><html><head><title>News</title>"
    b'<link rel="alternate" type="application/rss+xml" href="/rss/real.xml"></head><body>hi</body></html>'
)


def hostile_cases() -> list[Case]:
    """The hostile feeds; the first four are the slow ones (one per host, see HOSTS)."""
    # fmt: off
    return [
        Case("trickle", _via(lambda s, p: s.trickle(p, _xml(_item("t", "x")), bytes_per_second=1)), words=("timed out after 3s", "reading the body")),
        Case("hang", _via(FeedServer.hang), words=("timed out after 3s",)),
        Case("slow headers", _late_headers, words=("timed out after 3s", "response headers")),
        Case("endless body", _via(FeedServer.stall_body), words=("timed out after 3s", "reading the body")),
        Case("oversize (Content-Length)", _via(lambda s, p: s.oversize(p, 50 * MB, framing="length")), words=("body larger than 10,000,000 bytes", "content-length")),
        Case("oversize (chunked, 1 TB)", _via(lambda s, p: s.oversize(p, 1 << 40, framing="chunked")), words=("body larger than 10,000,000 bytes",)),
        Case("gzip bomb (1 GB)", _via(lambda s, p: s.raw(p, zeros_bomb(1024, "gzip"), content_encoding="gzip")), words=("decompressed body larger than",)),
        Case("brotli bomb", _brotli_bomb, words=("decompressed body larger than",)),
        Case("stacked encodings", _via(lambda s, p: s.raw(p, zeros_bomb(1, "gzip"), content_encoding="gzip, gzip")), words=("stacked content-encoding refused",)),
        Case("redirect loop", _loop, words=("redirect loop",)),
        Case("redirect chain", _chain, words=("too many redirects", "6 > 5")),
        Case("redirect to private", _via(lambda s, p: s.redirect(p, "http://10.0.0.1/feed.xml", 302)), words=("redirect to private address 10.0.0.1 refused",)),
        Case("redirect to metadata", _via(lambda s, p: s.redirect(p, "http://169.254.169.254/latest/", 302)), words=("redirect to link-local address", "refused")),
        Case("404", _via(lambda s, p: s.status(p, 404)), words=("http 404 not found",)),
        Case("410", _via(lambda s, p: s.status(p, 410)), status="gone", words=("410", "gone", "no longer polled")),
        Case("500", _via(lambda s, p: s.status(p, 500)), words=("http 500 internal server error",)),
        Case("429 + Retry-After", _via(lambda s, p: s.retry_after(p, 429, 120)), words=("http 429",)),
        Case("HTML page", _serve(_HTML, "text/html; charset=utf-8"), words=("not a feed", "html page", "/rss/real.xml")),
        Case("not HTTP", _via(FeedServer.garbage), words=("malformed http response",)),
        Case("garbage body", _serve(bytes(range(256)) * 40, "application/octet-stream"), words=("not a feed",)),
        Case("connection refused", _refused, words=("connection refused",)),
        Case("TLS to a plain server", lambda s, p: f"https://127.0.0.1:{s.port}{p}", words=("tls error",)),
        Case("DNS failure", lambda s, p: f"http://hostile-feed.invalid{p}", words=("dns lookup failed",)),
        # Content: stored, as plain text.
        Case("invalid UTF-8", _serve(_xml(_item("u", b"Serbia caf\xe9 \xff\xfe \xc3( broken"))), status="ok"),
        Case("lying encoding", _serve(_xml(_item("l", "Vučić u Srbiji, Србија"), encoding="iso-8859-1"), "application/rss+xml; charset=windows-1251"), status="ok"),
        Case("NUL bytes", _serve(_xml(_item("n\x00", "Serbia a\x00b NUL", "<description>x\x00y\x01\x02\x1b</description>"))), status="ok"),
        Case("1 MB title", _serve(_xml(_item("big", "Serbia " + "word " * (MB // 5)))), status="ok"),
        Case("5,000 items", _serve(_xml("".join(_item(f"m{i}", f"Item {i}").decode() for i in range(5000)))), status="ok"),
        Case("billion laughs", _serve(_xml(_item("b", "Serbia &lol9; laughs"), prolog=_LAUGHS)), status="ok"),
        Case("XXE", _serve(_xml(_item("x", "Serbia &xxe; &http; entity"), prolog=_XXE)), status="ok"),
        Case("scripts and HTML", _serve(_SCRIPTS), status="ok"),
        Case("odd dates, missing fields", _serve(_ODD), status="ok"),
    ]
    # fmt: on


def healthy_cases() -> list[Case]:
    cases = []
    for k in range(HEALTHY):
        entries = [
            Entry(f"h{k}-{j}", f"{'Serbia' if j % 3 == 0 else 'Weather'} report {k}-{j} from desk {k}",
                  f"https://healthy{k}.example/{j}", f"Body of story {j} of feed {k}.", NOW - timedelta(hours=1))
            for j in range(HEALTHY_ITEMS)
        ]  # fmt: skip
        fmt = [(rss, "application/rss+xml"), (atom, "application/atom+xml"), (rdf, "application/rdf+xml"),
               (json_feed, "application/feed+json")][k % 4]  # fmt: skip
        cases.append(Case(f"healthy {k}", _serve(fmt[0](entries), fmt[1]), status="ok", hostile=False))
    return cases


def hostile_mix(servers: list[FeedServer]) -> list[tuple[Case, str]]:
    """Install every case on ``servers`` (round robin, so the slow ones land on different hosts)."""
    out = []
    for i, case in enumerate([*hostile_cases(), *healthy_cases()]):
        srv = servers[i % len(servers)]
        out.append((case, case.setup(srv, f"/feed{i}")))
    return out


def write_config(path: Path, database: Path, mix: list[tuple[Case, str]], digest_file: Path) -> Path:
    feeds = "".join(f'[[feeds]]\nurl = "{url}"\nname = {json.dumps(c.name)}\n' for c, url in mix)
    path.write_text(
        f'[watcher]\ndatabase = "{database}"\nfetch_timeout = "{FETCH_TIMEOUT:g}s"\n{feeds}'
        f'[channels.screen]\ntype = "console"\nstdout = false\nfile = "{digest_file}"\n'
        '[channels.mail]\ntype = "email"\nsmtp_host = "127.0.0.1"\nsmtp_port = 9\nsecurity = "none"\n'
        'from = "watcher@example.org"\nto = ["desk@example.org"]\n'
        '[[topics]]\nname = "serbia"\nquery = "Serbia OR Srbija OR Vučić"\nchannels = ["screen", "mail"]\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def servers() -> Iterator[list[FeedServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FeedServer()) for _ in range(HOSTS)]


def stored(db: Path, feed_url: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [
            dict(r) for r in conn.execute("SELECT * FROM items WHERE feed_url = ? ORDER BY id", [feed_url])
        ]


def _text_fields(row: dict[str, Any]) -> str:
    return "\n".join(str(row[k] or "") for k in ("guid", "title", "link", "summary", "content", "author"))


def test_one_poll_of_hostile_and_healthy_feeds(servers: list[FeedServer], tmp_path: Path) -> None:
    mix = hostile_mix(servers)
    assert sum(c.hostile for c, _ in mix) >= 20 and sum(not c.hostile for c, _ in mix) == HEALTHY
    db = tmp_path / "w.db"
    cfg = write_config(tmp_path / "watcher.toml", db, mix, tmp_path / "digests.txt")

    out = cli(cfg, "poll").output
    assert f"polled {len(mix)} feeds" in out

    report = {r["url"]: r for r in json_lines(cfg, "feeds")}
    for case, url in mix:
        r = report[url]
        assert r["status"] == case.status, (case.name, r)
        error = (r["last_error"] or "").lower()
        for word in case.words:
            assert word in error, (case.name, r["last_error"])
        if case.status == "ok":
            assert r["last_error"] is None, (case.name, r)
        if not case.hostile:
            assert r["items"] == HEALTHY_ITEMS, (case.name, r)

    by_name = {c.name: stored(db, url) for c, url in mix if c.status == "ok" and c.hostile}
    for name, items in by_name.items():
        assert items, name
        for row in items:
            text = _text_fields(row)
            assert not [ch for ch in text if ord(ch) < 32 and ch not in "\t\n"], (name, text[:200])
            assert "<" not in row["title"] or name == "scripts and HTML", (name, row["title"][:200])
            assert len(row["title"]) <= 1000
    assert [r["title"] for r in by_name["NUL bytes"]] == ["Serbia ab NUL"]
    assert by_name["NUL bytes"][0]["guid"] == "n"
    assert "Србија" in by_name["lying encoding"][0]["title"]
    assert "Serbia caf" in by_name["invalid UTF-8"][0]["title"]
    assert by_name["1 MB title"][0]["title"].endswith("…")
    assert len(by_name["5,000 items"]) == 1000  # max_items per feed and poll
    laughs = by_name["billion laughs"][0]["title"]
    assert "lollol" not in laughs and len(laughs) < 100
    assert "root:" not in _text_fields(by_name["XXE"][0])
    assert {r["published"] for r in by_name["odd dates, missing fields"]} == {None}
    assert len(by_name["odd dates, missing fields"]) >= 4
    scripts = {r["guid"]: r for r in by_name["scripts and HTML"]}
    assert scripts["s1"]["title"] == "Serbia bold news"
    # Markup escaped twice in the feed is text that looks like markup: kept as text, escaped when rendered.
    assert scripts["s2"]["title"] == "<script>steal()</script> Serbia quoted markup"
    assert "onerror" not in scripts["s2"]["summary"] and "javascript:" not in scripts["s2"]["summary"]
    assert scripts["s3"]["summary"] == "para"
    # Nothing hostile asked anything of a server it was not supposed to ask.
    assert not [r for s in servers for r in s.requests() if r.path.startswith("/rss/real.xml")]

    check_digests_are_plain(cfg)


def _digest_parts(output: str) -> dict[str, str]:
    """`digest --dry-run` output split per channel (the text after each '=== topic … -> channel C' line)."""
    parts: dict[str, str] = {}
    channel = None
    for line in output.splitlines(keepends=True):
        if line.startswith("=== topic "):
            channel = line.split("-> channel ")[1].split(":")[0]
            parts[channel] = ""
        elif channel is not None:
            parts[channel] += line
    return parts


def _html_of(mime: str) -> str:
    msg = email.message_from_string(mime)
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no HTML part in the e-mail")


def _text_of(mime: str) -> str:
    msg: Message = email.message_from_string(mime)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part in the e-mail")


def check_digests_are_plain(cfg: Path) -> None:
    out = cli(cfg, "digest", "--dry-run").output
    assert "\x00" not in out
    parts = _digest_parts(out)
    assert set(parts) == {"screen", "mail"}
    console, html, text = parts["screen"], _html_of(parts["mail"]), _text_of(parts["mail"])
    for body in (console, text):
        assert "Serbia bold news" in body
        for fragment in ("onerror", "javascript:", "<svg", "<b>", "<img"):
            assert fragment not in body, fragment
        assert not [ch for ch in body if ord(ch) < 32 and ch not in "\t\n\r"]
    # The only markup in the HTML part is the template's own: feed text arrives escaped.
    lower = html.lower()
    for tag in ("<script", "<svg", "<iframe", "<img", "onerror", "onload", "javascript:"):
        assert tag not in lower, tag
    assert "&lt;script&gt;steal()&lt;/script&gt; Serbia quoted markup" in html
    assert "Serbia bold news" in html
    assert len(out) < 200_000  # the 1 MB title arrives capped


def test_410_feed_is_never_polled_again_by_poll_or_the_daemon(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.status("/gone.xml", 410)
    feed_server.serve("/ok.xml", rss([Entry("1", "Weather", "https://x.example/1", "sunny", NOW)]))
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'[watcher]\ndatabase = "{tmp_path / "w.db"}"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/gone.xml")}"\nname = "Gone"\ninterval = "100ms"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/ok.xml")}"\nname = "Ok"\ninterval = "100ms"\n',
        encoding="utf-8",
    )
    assert "HTTP 410 Gone" in cli(cfg, "poll").output
    second = cli(cfg, "poll").output
    assert "gone" in second and "polled 2 feeds" in second
    daemon = DaemonProcess(cfg, "--tick", "0.05")
    try:
        seen = len(feed_server.requests("/ok.xml"))
        feed_server.wait_requests("/ok.xml", seen + 3, timeout=20)  # the daemon went round several times
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    assert len(feed_server.requests("/gone.xml")) == 1, "a gone feed must never be fetched again"
    gone = next(r for r in json_lines(cfg, "feeds") if r["name"] == "Gone")
    assert gone["status"] == "gone"
    assert "410" in gone["last_error"] and "no longer polled" in gone["last_error"]
    assert gone["next_poll"] is None
    table = cli(cfg, "feeds").output
    assert "gone" in table and "HTTP 410 Gone" in table
