"""Fetch against well-behaved servers: conditional GET, status codes, redirects, encodings, limits.

Hostile servers (bombs, stalls, forbidden addresses) are in test_fetch_hostile.py.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.feedserver import FeedRequestHandler, FeedServer
from watcher.fetch import ACCEPT, Fetcher, parse_retry_after
from watcher.models import USER_AGENT, FetchRequest, FetchSettings, FetchStatus

pytestmark = pytest.mark.anyio

FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title></channel></rss>\n"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feedparser"


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher() as f:
        yield f


def request(url: str, **settings: Any) -> FetchRequest:
    return FetchRequest(url=url, settings=FetchSettings(**{"timeout": 5.0, **settings}))


# --- 200 and conditional GET ------------------------------------------------------------------------


async def test_ok_returns_body_validators_and_sends_feed_accept(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    route = feed_server.serve("/feed.xml", FEED, headers={"Cache-Control": "max-age=60"})
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.status is FetchStatus.OK
    assert (result.http_status, result.body) == (200, FEED)
    assert (result.etag, result.last_modified) == (route.etag, route.last_modified)
    assert result.headers["content-type"] == "application/rss+xml"
    assert result.headers["cache-control"] == "max-age=60"
    assert result.final_url == feed_server.url("/feed.xml")
    assert result.permanent_url is None
    assert result.error is None
    assert result.error_kind is None
    assert result.elapsed > 0
    [sent] = feed_server.requests("/feed.xml")
    assert sent.headers["accept"] == ACCEPT
    assert sent.headers["user-agent"] == USER_AGENT
    assert sent.headers["accept-encoding"].startswith("gzip, deflate")
    assert "if-none-match" not in sent.headers
    assert "if-modified-since" not in sent.headers


async def test_conditional_get_sends_validators_and_gets_304(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED)
    first = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    second = await fetcher.fetch(
        FetchRequest(url=feed_server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    )
    assert second.status is FetchStatus.NOT_MODIFIED
    assert (second.http_status, second.body) == (304, None)
    assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
    sent = feed_server.requests("/feed.xml")[1].headers
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified


async def test_if_modified_since_alone_gets_304(feed_server: FeedServer, fetcher: Fetcher) -> None:
    route = feed_server.serve("/feed.xml", FEED)
    result = await fetcher.fetch(
        FetchRequest(url=feed_server.url("/feed.xml"), last_modified=route.last_modified)
    )
    assert result.status is FetchStatus.NOT_MODIFIED
    assert "if-none-match" not in feed_server.requests("/feed.xml")[0].headers


async def test_304_without_validators_keeps_the_old_ones(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.handler("/bare304", lambda h: h.start(304))
    result = await fetcher.fetch(
        FetchRequest(
            url=feed_server.url("/bare304"), etag='"old"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT"
        )
    )
    assert result.status is FetchStatus.NOT_MODIFIED
    assert (result.etag, result.last_modified) == ('"old"', "Mon, 01 Jan 2024 00:00:00 GMT")


async def test_unconditional_mode_sends_no_validators(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED)
    result = await fetcher.fetch(
        FetchRequest(url=feed_server.url("/feed.xml"), etag='"x"', last_modified="x", conditional=False)
    )
    assert result.status is FetchStatus.OK
    sent = feed_server.requests("/feed.xml")[0].headers
    assert "if-none-match" not in sent
    assert "if-modified-since" not in sent


async def test_changed_body_round_trips_new_validators(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.url("/feed.xml")
    feed_server.serve("/feed.xml", FEED)
    old = await fetcher.fetch(FetchRequest(url=url))
    feed_server.serve("/feed.xml", FEED.replace(b"<title>T", b"<title>New"))
    new = await fetcher.fetch(FetchRequest(url=url, etag=old.etag, last_modified=old.last_modified))
    assert new.status is FetchStatus.OK
    assert b"New" in (new.body or b"")
    assert new.etag != old.etag
    assert new.last_modified != old.last_modified
    again = await fetcher.fetch(FetchRequest(url=url, etag=new.etag, last_modified=new.last_modified))
    assert again.status is FetchStatus.NOT_MODIFIED


async def test_lying_server_is_caught_by_an_unconditional_fetch(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    url = feed_server.url("/feed.xml")
    feed_server.serve("/feed.xml", FEED)
    old = await fetcher.fetch(FetchRequest(url=url))
    feed_server.serve("/feed.xml", FEED + b"<!-- changed -->", lying=True)
    lied = await fetcher.fetch(FetchRequest(url=url, etag=old.etag, last_modified=old.last_modified))
    assert lied.status is FetchStatus.NOT_MODIFIED
    truth = await fetcher.fetch(FetchRequest(url=url, etag=old.etag, conditional=False))
    assert truth.status is FetchStatus.OK
    assert truth.body == FEED + b"<!-- changed -->"


async def test_304_to_an_unconditional_request_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.handler("/always304", lambda h: h.start(304))
    result = await fetcher.fetch(FetchRequest(url=feed_server.url("/always304"), conditional=False))
    assert result.status is FetchStatus.ERROR
    assert result.error_kind == "not-modified-unasked"


async def test_validators_with_control_characters_are_not_sent(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED)
    result = await fetcher.fetch(FetchRequest(url=feed_server.url("/feed.xml"), etag='"a"\r\nX-Evil: 1'))
    assert result.status is FetchStatus.OK
    sent = feed_server.requests("/feed.xml")[0].headers
    assert "if-none-match" not in sent
    assert "x-evil" not in sent


async def test_user_agent_from_fetcher_and_from_settings(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")
    async with Fetcher(user_agent="Agency/1") as f:
        await f.fetch(FetchRequest(url=url))
        await f.fetch(FetchRequest(url=url, settings=FetchSettings(user_agent="PerFeed/2")))
    assert [r.headers["user-agent"] for r in feed_server.requests("/feed.xml")] == ["Agency/1", "PerFeed/2"]


# --- status codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error"), (403, "HTTP 403 Forbidden")],
)
async def test_http_errors_name_the_status(
    feed_server: FeedServer, fetcher: Fetcher, code: int, words: str
) -> None:
    feed_server.status("/feed.xml", code, b"nope")
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert (result.status, result.http_status, result.error, result.error_kind) == (
        FetchStatus.ERROR,
        code,
        words,
        f"http-{code}",
    )
    assert result.body is None
    assert result.retry_after is None


async def test_410_is_gone(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.status("/feed.xml", 410)
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert (result.status, result.http_status, result.error) == (FetchStatus.GONE, 410, "HTTP 410 Gone")


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_seconds(feed_server: FeedServer, fetcher: Fetcher, code: int) -> None:
    feed_server.retry_after("/feed.xml", code, 120)
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert (result.status, result.http_status, result.retry_after) == (FetchStatus.ERROR, code, 120.0)


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_http_date(feed_server: FeedServer, fetcher: Fetcher, code: int) -> None:
    when = datetime.now(UTC) + timedelta(hours=2)
    feed_server.retry_after("/feed.xml", code, format_datetime(when, usegmt=True))
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.retry_after is not None
    assert 7000 < result.retry_after <= 7200


async def test_retry_after_ignored_on_other_codes(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.retry_after("/feed.xml", 500, 120)
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.retry_after is None


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0 <= seconds <= 86400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("86400", 86400.0),
        ("86401", 86400.0),
        ("9" * 400, 86400.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 01 May 2024 13:00:00 GMT", 3600.0),
        ("Wed, 01 May 2024 13:00:00 -0000", 3600.0),
        ("Wednesday, 01-May-24 13:00:00 GMT", 3600.0),  # obsolete RFC 850 form, still accepted
        ("Sat, 04 May 2024 12:00:00 GMT", 86400.0),
        ("Wed, 01 May 2024 11:00:00 GMT", None),
        ("Wed, 99 Foo 2024 11:00:00 GMT", None),
    ],
)
async def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


# --- redirects --------------------------------------------------------------------------------------


async def test_permanent_redirect_chain_sets_permanent_url(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/old", "/older", 301)
    feed_server.redirect("/older", "/feed.xml", 308)
    feed_server.serve("/feed.xml", FEED)
    result = await fetcher.fetch(request(feed_server.url("/old")))
    assert result.status is FetchStatus.OK
    assert result.body == FEED
    assert result.url == feed_server.url("/old")
    assert result.final_url == result.permanent_url == feed_server.url("/feed.xml")


@pytest.mark.parametrize("codes", [(302,), (301, 302), (307, 301), (303,)])
async def test_temporary_hop_means_not_permanent(
    feed_server: FeedServer, fetcher: Fetcher, codes: tuple[int, ...]
) -> None:
    for i, code in enumerate(codes):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}", code)
    feed_server.serve(f"/r{len(codes)}", FEED)
    result = await fetcher.fetch(request(feed_server.url("/r0")))
    assert result.status is FetchStatus.OK
    assert result.final_url == feed_server.url(f"/r{len(codes)}")
    assert result.permanent_url is None


async def test_relative_location_and_validators_on_every_hop(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/a/old.xml", "../b/feed.xml", 301)
    feed_server.serve("/b/feed.xml", FEED)
    result = await fetcher.fetch(FetchRequest(url=feed_server.url("/a/old.xml"), etag='"e"'))
    assert result.final_url == feed_server.url("/b/feed.xml")
    assert [r.headers.get("if-none-match") for r in feed_server.requests()] == ['"e"', '"e"']


async def test_redirect_without_location(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.status("/r", 302)
    result = await fetcher.fetch(request(feed_server.url("/r")))
    assert (result.error_kind, result.error) == ("redirect", "HTTP 302 Found without a Location header")


async def test_redirect_loop(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/a", "/b", 302)
    feed_server.redirect("/b", "/a", 302)
    result = await fetcher.fetch(request(feed_server.url("/a")))
    assert result.error_kind == "redirect-loop"
    assert result.error == f"redirect loop: {feed_server.url('/a')} was already visited"
    assert len(feed_server.requests()) == 2


async def test_too_many_redirects(feed_server: FeedServer, fetcher: Fetcher) -> None:
    for i in range(6):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}", 301)
    feed_server.serve("/r6", FEED)
    result = await fetcher.fetch(request(feed_server.url("/r0")))
    assert (result.error_kind, result.error) == ("too-many-redirects", "too many redirects (6 > 5)")
    assert "/r6" not in {r.path for r in feed_server.requests()}
    exactly = await fetcher.fetch(request(feed_server.url("/r1")))  # 5 hops: allowed
    assert exactly.status is FetchStatus.OK
    tight = await fetcher.fetch(request(feed_server.url("/r4"), max_redirects=1))
    assert tight.error == "too many redirects (2 > 1)"


# --- content codings --------------------------------------------------------------------------------

BIG = FEED * 5000  # ~ 430 KB: several network reads and several inflate pieces


@pytest.mark.parametrize("kind", ["gzip", "x-gzip", "deflate-zlib", "deflate-raw"])
async def test_compressed_bodies_are_decoded(feed_server: FeedServer, fetcher: Fetcher, kind: str) -> None:
    if kind in ("gzip", "x-gzip"):
        feed_server.raw("/feed.xml", gzip.compress(BIG), content_encoding=kind)
    else:
        feed_server.deflate("/feed.xml", BIG, raw=kind == "deflate-raw")
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.status is FetchStatus.OK
    assert result.body == BIG


async def test_brotli_is_decoded_when_a_bounded_brotli_is_installed(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    brotli = pytest.importorskip("brotli")
    if not hasattr(brotli.Decompressor(), "can_accept_more_data"):
        pytest.skip("brotli < 1.2 cannot decompress in bounded steps, so fetch does not offer it")
    feed_server.raw("/feed.xml", brotli.compress(BIG), content_encoding="br")
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.body == BIG
    assert feed_server.requests("/feed.xml")[0].headers["accept-encoding"] == "gzip, deflate, br"


async def test_concatenated_gzip_members_form_one_body(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.raw("/feed.xml", gzip.compress(b"<rss>") + gzip.compress(b"</rss>"), content_encoding="gzip")
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.body == b"<rss></rss>"


async def test_identity_coding_is_plain(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.raw("/feed.xml", FEED, content_encoding="identity", chunked=True)
    result = await fetcher.fetch(request(feed_server.url("/feed.xml")))
    assert result.body == FEED


async def test_body_exactly_at_the_cap_passes(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", b"x" * 1000)
    assert (
        await fetcher.fetch(request(feed_server.url("/feed.xml"), max_bytes=1000))
    ).status is FetchStatus.OK
    result = await fetcher.fetch(request(feed_server.url("/feed.xml"), max_bytes=999))
    assert (result.error_kind, result.error) == (
        "too-large",
        "body larger than 999 bytes (Content-Length 1,000)",
    )


# --- concurrency ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("per_host", "overlap"), [(1, 1), (2, 2)], ids=["limited", "control"])
async def test_per_host_limit_serialises_requests_to_one_host(
    feed_server: FeedServer, per_host: int, overlap: int
) -> None:
    """With per_host=1 two requests to one host never overlap; the control (per_host=2) shows the handler
    does see overlap when the limit allows it."""
    active = 0
    most = 0
    lock = threading.Condition()

    def slow(h: FeedRequestHandler) -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
            lock.notify_all()
            # Hold the request until a second one overlaps it (which a limit of 1 must prevent: then give
            # up after 0.3 s) or, for the control, until the overlap that must come.
            lock.wait_for(lambda: most > 1, timeout=0.3 if per_host == 1 else 5)
            active -= 1
        h.respond(200, FEED)

    feed_server.handler("/slow", slow)
    async with Fetcher(per_host=per_host) as f:
        results = await asyncio.gather(*(f.fetch(request(feed_server.url("/slow"))) for _ in range(2)))
    assert [r.status for r in results] == [FetchStatus.OK, FetchStatus.OK]
    assert most == overlap


# --- the feed server itself -------------------------------------------------------------------------


def get(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_server_post_route_records_json_and_validates(feed_server: FeedServer) -> None:
    route = feed_server.post_route("/hook", validator=lambda doc: None if "text" in doc else "no text")
    assert get(feed_server.url("/hook"), b'{"text": "hi"}')[0] == 200
    assert get(feed_server.url("/hook"), b'{"blocks": []}')[:3:2] == (400, b"no text")
    route.queue.extend([429])
    route.status = 500
    assert [get(feed_server.url("/hook"), b'{"text": "x"}')[0] for _ in range(2)] == [429, 500]
    assert feed_server.posted("/hook")[0] == {"text": "hi"}
    assert len(feed_server.posted("/hook")) == 4


def test_server_answers_unknown_paths_404_and_wrong_method_405(feed_server: FeedServer) -> None:
    feed_server.post_route("/hook")
    assert get(feed_server.url("/nothing"))[0] == 404
    assert get(feed_server.url("/hook"))[0] == 405


def test_server_without_validators_never_answers_304(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED, validators=False)
    status, headers, _ = get(feed_server.url("/feed.xml"))
    assert status == 200
    assert "etag" not in headers
    assert "last-modified" not in headers
    req = urllib.request.Request(feed_server.url("/feed.xml"), headers={"If-None-Match": "*"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_server_close_releases_a_hung_handler() -> None:
    srv = FeedServer()
    srv.hang("/hang")
    errors: list[BaseException] = []

    def client() -> None:
        try:
            urllib.request.urlopen(srv.url("/hang"), timeout=30).read()
        except BaseException as e:  # the connection is cut at close: that is the point
            errors.append(e)

    thread = threading.Thread(target=client)
    thread.start()
    srv.wait_requests("/hang")
    srv.close()  # returns only after every handler thread has ended
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors


@pytest.mark.skipif(not CORPUS.is_dir(), reason="feedparser corpus not present next to the repository")
async def test_corpus_header_lines_become_response_headers(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve_corpus_file("/charset.xml", CORPUS / "encoding" / "http_text_xml_charset_2.xml")
    feed_server.serve_corpus_file("/etag.xml", CORPUS / "wellformed" / "http" / "headers_etag.xml")
    charset = await fetcher.fetch(request(feed_server.url("/charset.xml")))
    assert charset.headers["content-type"] == "text/xml; charset=windows-1252"
    etag = await fetcher.fetch(request(feed_server.url("/etag.xml")))
    assert etag.etag == "foo"
    assert etag.last_modified is None
    assert etag.headers["content-type"] == "application/xml"
