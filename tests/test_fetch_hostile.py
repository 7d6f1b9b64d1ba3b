"""Fetch against hostile or broken servers: every one costs at most the FetchSettings bounds.

Deadlines here are 1 s, so a test that waits for a deadline takes about that long; nothing waits for a
deadline that should not be reached. Only 127.0.0.1 is ever contacted: forbidden addresses are refused
before connecting, and the "public feed" case checks the guard with a public literal, never a connection.
"""

from __future__ import annotations

import socket
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.feedserver import FeedRequestHandler, FeedServer
from watcher.fetch import Fetcher, check_address
from watcher.models import FetchRequest, FetchResult, FetchSettings, FetchStatus

pytestmark = pytest.mark.anyio

FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title></channel></rss>\n"
MB = 1 << 20


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher() as f:
        yield f


async def fetch(fetcher: Fetcher, url: str, **settings: Any) -> FetchResult:
    return await fetcher.fetch(FetchRequest(url=url, settings=FetchSettings(**{"timeout": 1.0, **settings})))


async def _fetch_traced(fetcher: Fetcher, url: str, max_bytes: int = 1_000_000) -> tuple[FetchResult, int]:
    """The fetch's result and the peak of Python allocations while it ran (what a bomb would blow up)."""
    tracemalloc.start()
    try:
        result = await fetch(fetcher, url, max_bytes=max_bytes, timeout=10)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def zeros_bomb(megabytes: int, container: str) -> bytes:
    """``megabytes`` MB of zeros, deflated, in a gzip or zlib container, built without inflating it.

    After a full flush the compressor keeps no history, so every further megabyte of zeros compresses to
    the same bytes: the bomb is one compressed block repeated, about 1000:1.
    """
    zeros = bytes(MB)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    stream = block * megabytes + deflater.flush()
    if container == "gzip":
        crc = 0
        for _ in range(megabytes):
            crc = zlib.crc32(zeros, crc)
        size = (megabytes * MB) & 0xFFFFFFFF
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + stream + struct.pack("<II", crc, size)
    adler = 1
    for _ in range(megabytes):
        adler = zlib.adler32(zeros, adler)
    return b"\x78\xda" + stream + struct.pack(">I", adler)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return zeros_bomb(1024, "gzip")  # 1 GB of zeros in ~1 MB


def test_bombs_are_what_they_claim() -> None:
    """The bomb builder itself: a small one inflates (by plain zlib) to exactly its size of zeros."""
    for container, wbits in (("gzip", 16 + zlib.MAX_WBITS), ("zlib", zlib.MAX_WBITS)):
        inflated = zlib.decompress(zeros_bomb(3, container), wbits)
        assert inflated == bytes(3 * MB)


# --- deadlines --------------------------------------------------------------------------------------


async def test_trickle_is_abandoned_at_the_total_deadline(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.trickle("/slow.xml", FEED * 10, bytes_per_second=1)
    result = await fetch(fetcher, feed_server.url("/slow.xml"))
    assert (result.status, result.error_kind) == (FetchStatus.ERROR, "timeout")
    assert result.error == "timed out after 1s (total deadline) while reading the body"
    assert result.body is None


async def test_body_that_never_ends(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.stall_body("/stall.xml")
    result = await fetch(fetcher, feed_server.url("/stall.xml"))
    assert result.error == "timed out after 1s (total deadline) while reading the body"


async def test_headers_that_come_too_late(feed_server: FeedServer, fetcher: Fetcher) -> None:
    def late(h: FeedRequestHandler) -> None:
        if not h.wait(30):  # released at teardown, long after the client gave up
            h.respond(200, FEED)

    feed_server.handler("/late.xml", late)
    result = await fetch(fetcher, feed_server.url("/late.xml"))
    assert result.error_kind == "timeout"
    assert result.error is not None
    assert "while connecting or waiting for the response headers" in result.error


async def test_server_that_never_answers(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.hang("/hang.xml")
    result = await fetch(fetcher, feed_server.url("/hang.xml"), timeout=0.5)
    assert result.error is not None
    assert result.error.startswith("timed out after 0.5s (total deadline)")


async def test_deadline_covers_redirect_hops(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/old.xml", "/stall.xml", 301)
    feed_server.stall_body("/stall.xml")
    result = await fetch(fetcher, feed_server.url("/old.xml"))
    assert result.error_kind == "timeout"
    assert result.final_url == feed_server.url("/stall.xml")


# --- size caps --------------------------------------------------------------------------------------


async def test_content_length_over_cap_is_refused_before_reading(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.oversize("/big.xml", 50 * MB, framing="length")
    result = await fetch(fetcher, feed_server.url("/big.xml"), max_bytes=100_000)
    assert (result.error_kind, result.error) == (
        "too-large",
        "body larger than 100,000 bytes (Content-Length 52,428,800)",
    )


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_unannounced_body_is_capped_while_streaming(
    feed_server: FeedServer, fetcher: Fetcher, framing: str
) -> None:
    # 1 TB would take hours to send: passing means the client stopped reading at the cap.
    feed_server.oversize("/endless.xml", 1 << 40, framing=framing)
    result = await fetch(fetcher, feed_server.url("/endless.xml"), max_bytes=100_000, timeout=10)
    assert (result.error_kind, result.error) == ("too-large", "body larger than 100,000 bytes")


@pytest.mark.parametrize("chunked", [False, True])
async def test_gzip_bomb_stops_at_the_cap_with_bounded_memory(
    feed_server: FeedServer, fetcher: Fetcher, gzip_bomb: bytes, chunked: bool
) -> None:
    feed_server.raw("/bomb.xml", gzip_bomb, content_encoding="gzip", chunked=chunked)
    # The cap is above the bomb's ~1.06 MB on the wire, so only the decompressed count can stop it.
    result, peak = await _fetch_traced(fetcher, feed_server.url("/bomb.xml"), max_bytes=4_000_000)
    assert (result.error_kind, result.error) == ("too-large", "decompressed body larger than 4,000,000 bytes")
    assert peak < 32 * MB, f"peak {peak:,} bytes while refusing a 1 GB bomb"


@pytest.mark.parametrize("container", ["zlib", "raw"])
async def test_deflate_bomb_stops_at_the_cap(
    feed_server: FeedServer, fetcher: Fetcher, container: str
) -> None:
    bomb = zeros_bomb(256, "zlib")
    if container == "raw":
        bomb = bomb[2:-4]  # bare RFC 1951, as some servers send for "deflate"
    feed_server.raw("/bomb.xml", bomb, content_encoding="deflate")
    result, peak = await _fetch_traced(fetcher, feed_server.url("/bomb.xml"))
    assert result.error == "decompressed body larger than 1,000,000 bytes"
    assert peak < 32 * MB


async def test_brotli_bomb_stops_at_the_cap(feed_server: FeedServer, fetcher: Fetcher) -> None:
    brotli = pytest.importorskip("brotli")
    if not hasattr(brotli.Decompressor(), "can_accept_more_data"):
        pytest.skip("brotli < 1.2 cannot decompress in bounded steps, so fetch does not offer it")
    feed_server.raw("/bomb.xml", brotli.compress(bytes(64 * MB), quality=5), content_encoding="br")
    result, peak = await _fetch_traced(fetcher, feed_server.url("/bomb.xml"))
    assert result.error == "decompressed body larger than 1,000,000 bytes"
    assert peak < 16 * MB


async def test_small_compressed_body_over_the_cap_once_inflated(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.gzip("/feed.xml", FEED * 100)
    result = await fetch(fetcher, feed_server.url("/feed.xml"), max_bytes=len(FEED) * 100 - 1)
    assert result.error_kind == "too-large"
    passes = await fetch(fetcher, feed_server.url("/feed.xml"), max_bytes=len(FEED) * 100)
    assert passes.body == FEED * 100


# --- content codings --------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip, gzip", "gzip,deflate", "deflate, gzip"])
async def test_stacked_encodings_are_refused(feed_server: FeedServer, fetcher: Fetcher, coding: str) -> None:
    feed_server.raw("/feed.xml", zeros_bomb(1, "gzip"), content_encoding=coding)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.error_kind == "encoding"
    assert result.error is not None
    assert result.error.startswith("stacked Content-Encoding refused")


async def test_stacked_encoding_in_two_header_lines_is_refused(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    def two_lines(h: FeedRequestHandler) -> None:
        body = zeros_bomb(1, "gzip")
        h.send_response(200)
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    feed_server.handler("/feed.xml", two_lines)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.error == "stacked Content-Encoding refused (gzip, gzip)"


@pytest.mark.parametrize("coding", ["zstd", "compress", "br;q=1"])
async def test_unsupported_encoding_is_refused(
    feed_server: FeedServer, fetcher: Fetcher, coding: str
) -> None:
    feed_server.raw("/feed.xml", b"\x28\xb5\x2f\xfd garbage", content_encoding=coding)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert (result.error_kind, result.error) == ("encoding", f"unsupported Content-Encoding {coding!r}")


async def test_corrupt_gzip(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.raw(
        "/feed.xml", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"\xff" * 100, content_encoding="gzip"
    )
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.error_kind == "decode"
    assert result.error is not None
    assert result.error.startswith("corrupt gzip body:")


# --- broken peers -----------------------------------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connection_refused(fetcher: Fetcher) -> None:
    result = await fetch(fetcher, f"http://127.0.0.1:{unused_port()}/feed.xml")
    assert (result.status, result.error_kind, result.error) == (
        FetchStatus.ERROR,
        "connect-refused",
        "connection refused",
    )


async def test_dns_failure(fetcher: Fetcher) -> None:
    result = await fetch(fetcher, "http://feed.invalid/rss")  # RFC 6761: never resolves
    assert (result.error_kind, result.error) == ("dns", "DNS lookup failed for host feed.invalid")


async def test_tls_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED)
    result = await fetch(fetcher, f"https://127.0.0.1:{feed_server.port}/feed.xml")
    assert result.error_kind == "tls"
    assert result.error is not None
    assert result.error.startswith("TLS error: ")


async def test_garbage_instead_of_http(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.garbage("/feed.xml")
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.error_kind == "protocol"
    assert result.error is not None
    assert result.error.startswith("malformed HTTP response")


async def test_connection_closed_mid_body(feed_server: FeedServer, fetcher: Fetcher) -> None:
    def short(h: FeedRequestHandler) -> None:
        h.start(200, {"Content-Length": "1000"})
        h.wfile.write(FEED[:20])
        h.close_connection = True

    feed_server.handler("/feed.xml", short)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert (result.error_kind, result.error) == ("protocol", "connection closed before the body was complete")


async def test_connection_closed_without_response(feed_server: FeedServer, fetcher: Fetcher) -> None:
    def silent(h: FeedRequestHandler) -> None:
        h.close_connection = True

    feed_server.handler("/feed.xml", silent)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert (result.error_kind, result.error) == ("protocol", "connection closed before the response")


# --- forbidden addresses and schemes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("http://10.0.0.1/feed.xml", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
        ("http://[::ffff:192.168.1.1]/", "private address 192.168.1.1"),
        ("http://[fd00::1]/", "unique-local address fd00::1"),
        ("http://224.0.0.1/", "multicast address 224.0.0.1"),
        ("http://0.0.0.0:{port}/feed.xml", "unspecified address 0.0.0.0"),
    ],
)
async def test_redirect_from_loopback_to_another_zone_is_refused(
    feed_server: FeedServer, fetcher: Fetcher, target: str, words: str
) -> None:
    target = target.format(port=feed_server.port)
    feed_server.redirect("/feed.xml", target, 302)
    feed_server.serve("/real.xml", FEED)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert (result.error_kind, result.error) == ("private-address", f"redirect to {words} refused")
    # 0.0.0.0 reaches this very server on Linux, so a request logged there would mean the guard failed.
    assert [r.path for r in feed_server.requests()] == ["/feed.xml"]


async def test_allow_private_lets_the_redirect_through(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/feed.xml", f"http://0.0.0.0:{feed_server.port}/real.xml", 302)
    feed_server.serve("/real.xml", FEED)
    result = await fetch(fetcher, feed_server.url("/feed.xml"), allow_private=True)
    assert result.status is FetchStatus.OK
    assert result.body == FEED


async def test_redirect_within_the_loopback_zone_is_allowed(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/feed.xml", f"http://localhost:{feed_server.port}/real.xml", 301)
    feed_server.serve("/real.xml", FEED)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.status is FetchStatus.OK
    assert result.permanent_url == f"http://localhost:{feed_server.port}/real.xml"


PUBLIC_FEED = "http://93.184.216.34/feed.xml"  # a public literal: only classified, never contacted


@pytest.mark.parametrize(
    ("url", "zone_url", "allow_private", "expected"),
    [
        ("http://127.0.0.1:8080/x", PUBLIC_FEED, False, "loopback address 127.0.0.1 refused"),
        ("http://localhost/x", PUBLIC_FEED, False, "loopback address 127.0.0.1 (host localhost) refused"),
        ("http://[::1]/x", None, False, "loopback address ::1 refused"),
        ("http://127.0.0.1/x", PUBLIC_FEED, True, None),
        ("http://10.0.0.1/x", None, True, None),
        ("http://10.2.3.4/x", "http://10.0.0.1/feed", False, None),
        ("http://192.168.1.1/x", "http://10.0.0.1/feed", False, "private address 192.168.1.1 refused"),
        (
            "http://169.254.169.254/",
            "http://127.0.0.1/feed",
            False,
            "link-local address 169.254.169.254 refused",
        ),
        ("http://100.64.0.1/", None, False, "shared (carrier-grade NAT) address 100.64.0.1 refused"),
        ("http://192.0.2.1/", None, False, "reserved address 192.0.2.1 refused"),
        ("http://192.0.2.1/", "http://192.0.2.1/feed", False, None),
        ("http://93.184.216.34/other", "http://127.0.0.1/feed", False, None),
        ("file:///etc/passwd", None, True, "unsupported URL scheme 'file' (only http and https)"),
        ("gopher://127.0.0.1/", None, True, "unsupported URL scheme 'gopher' (only http and https)"),
        ("http:///nohost", None, True, "invalid URL: no host in URL 'http:///nohost'"),
        ("http://127.0.0.1:99999/", None, True, "invalid URL: Port out of range 0-65535"),
        ("http://no.such.host.invalid/", None, True, "DNS lookup failed for host no.such.host.invalid"),
    ],
)
async def test_check_address(
    url: str, zone_url: str | None, allow_private: bool, expected: str | None
) -> None:
    assert await check_address(url, allow_private=allow_private, zone_url=zone_url) == expected


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "javascript:alert(1)"])
async def test_non_http_scheme_is_refused(fetcher: Fetcher, url: str) -> None:
    result = await fetch(fetcher, url)
    assert result.error_kind in {"bad-scheme", "bad-url"}
    assert result.status is FetchStatus.ERROR


async def test_redirect_to_file_scheme_is_refused(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/feed.xml", "file:///etc/passwd", 302)
    result = await fetch(fetcher, feed_server.url("/feed.xml"))
    assert result.error == "redirect to unsupported URL scheme 'file' (only http and https)"
