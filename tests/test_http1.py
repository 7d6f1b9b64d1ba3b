"""watcher/http1.py, the Fetcher's own HTTP/1.1 transport: framing, limits, the keep-alive pool, and the proof
that it answers as httpcore did (same responses, same Fetcher results and words) over real inputs.

Scripted peers are asyncio servers on 127.0.0.1 that answer each request head with the bytes a test gives,
and count connections and requests, so reuse is checked where it happens: on the server side.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.feedserver import FeedRequestHandler, FeedServer
from watcher.fetch import Fetcher, _tls_context
from watcher.http1 import MAX_HEAD, Transport
from watcher.models import FetchRequest, FetchResult, FetchSettings

pytestmark = pytest.mark.anyio

FEEDS = sorted(
    p for p in (Path(__file__).parent / "data" / "feeds").iterdir() if p.suffix in (".xml", ".json")
)
FEED = FEEDS[0].read_bytes()

# What a peer does after its reply: keep the connection, close it, or hold it open until the test ends.
KEEP, CLOSE, STALL = "keep", "close", "stall"
Reply = tuple[bytes, str]


@dataclass
class Peer:
    """A scripted HTTP peer: ``answer(connection number, request number on it, request head)``."""

    answer: Callable[[int, int, bytes], Reply]
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever a client connection ends
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            for n in range(1_000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.heads.append(head)
                data, after = self.answer(number, n, head)
                writer.write(data)
                await writer.drain()
                if after == CLOSE:
                    break
                if after == STALL:
                    reads = asyncio.ensure_future(reader.read(1))  # the client's close ends the stall
                    stopped = asyncio.ensure_future(self.stop.wait())
                    await asyncio.wait([reads, stopped], return_when=asyncio.FIRST_COMPLETED)
                    reads.cancel()
                    stopped.cancel()
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.closed.set()

    def url(self, path: str = "/feed", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


async def _serve(answer: Callable[[int, int, bytes], Reply], tls: ssl.SSLContext | None = None) -> Any:
    peer = Peer(answer)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0, ssl=tls)
    peer.port = server.sockets[0].getsockname()[1]
    return peer, server


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(answer)`` -> a running Peer; every server is shut at the end of the test."""
    running: list[tuple[Peer, asyncio.Server]] = []

    async def start(answer: Callable[[int, int, bytes], Reply], tls: ssl.SSLContext | None = None) -> Peer:
        peer, server = await _serve(answer, tls)
        running.append((peer, server))
        return peer

    yield start
    for peer, server in running:
        peer.stop.set()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, Transport]]:
    transport = Transport(ssl_context=ssl.create_default_context(), max_idle_per_origin=2, max_idle=3)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as c:
        yield c, transport


def ok(body: bytes, *, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return version + b" 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def chunked(pieces: list[bytes], *, ext: bytes = b"", trailers: bytes = b"") -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return out + b"0\r\n" + trailers + b"\r\n"


async def get(c: httpx.AsyncClient, url: str, method: str = "GET") -> tuple[httpx.Response, bytes]:
    async with c.stream(method, url) as r:
        body = b"".join([p async for p in r.aiter_raw()])
    return r, body


# --- framing ----------------------------------------------------------------------------------------


async def test_chunked_with_extensions_and_trailers(serve: Any, client: Any) -> None:
    c, _ = client
    reply = chunked([FEED[:10], FEED[10:]], ext=b';name="v";x', trailers=b"X-Sum: 1\r\nX-More: 2\r\n")
    peer = await serve(lambda *_: (reply, KEEP))
    r, body = await get(c, peer.url())
    assert (r.status_code, body) == (200, FEED)
    assert "x-sum" not in r.headers  # trailers are skipped, not merged into the headers
    await get(c, peer.url())
    assert peer.connections == 1 and len(peer.heads) == 2  # the chunked body ended cleanly: reused


async def test_response_metadata_and_request_head(serve: Any, client: Any) -> None:
    c, _ = client
    peer = await serve(
        lambda *_: (b"HTTP/1.1 203 Quite Fine\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nhi", KEEP)
    )
    r, body = await get(c, peer.url("/p/a?q=1&r=%20"))
    assert (r.status_code, r.reason_phrase, r.http_version, body) == (203, "Quite Fine", "HTTP/1.1", b"hi")
    assert r.headers.raw[:2] == [(b"X-A", b"1"), (b"x-a", b"2")]  # raw bytes, names as sent, in order
    head = peer.heads[0].decode()
    assert head.startswith("GET /p/a?q=1&r=%20 HTTP/1.1\r\nHost: 127.0.0.1:")


async def test_http10_body_delimited_by_close(serve: Any, client: Any) -> None:
    c, transport = client
    peer = await serve(lambda *_: (b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + FEED, CLOSE))
    r, body = await get(c, peer.url())
    assert (r.http_version, body) == ("HTTP/1.0", FEED)
    assert transport.idle_count() == 0
    await get(c, peer.url())
    assert peer.connections == 2


async def test_http10_keep_alive_is_reused(serve: Any, client: Any) -> None:
    c, _ = client
    peer = await serve(lambda *_: (ok(b"x", version=b"HTTP/1.0", extra=b"Connection: Keep-Alive\r\n"), KEEP))
    await get(c, peer.url())
    await get(c, peer.url())
    assert (peer.connections, len(peer.heads)) == (1, 2)


async def test_connection_close_is_not_pooled(serve: Any, client: Any) -> None:
    c, transport = client
    peer = await serve(lambda *_: (ok(b"x", extra=b"Connection: close\r\n"), KEEP))
    await get(c, peer.url())
    assert transport.idle_count() == 0
    await get(c, peer.url())
    assert peer.connections == 2


@pytest.mark.parametrize(
    ("reply", "method"),
    [
        (b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n', "GET"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "HEAD"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 304 NM\r\n\r\n",
            "GET",
        ),
    ],
)
async def test_no_body_responses_keep_the_connection(
    serve: Any, client: Any, reply: bytes, method: str
) -> None:
    c, _ = client
    peer = await serve(lambda *_: (reply, KEEP))
    for _ in range(3):
        r, body = await get(c, peer.url(), method)
        assert body == b"" and r.status_code in (200, 204, 304)
    assert (peer.connections, len(peer.heads)) == (1, 3)


async def test_bare_lf_line_ends_and_folded_headers(serve: Any, client: Any) -> None:
    c, _ = client
    peer = await serve(lambda *_: (b"HTTP/1.1 200 OK\nX-Long: a\n  b\nContent-Length: 2\n\nok", KEEP))
    r, body = await get(c, peer.url())
    assert (r.headers["x-long"], body) == ("a b", b"ok")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "invalid chunk size line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "chunk"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         "both Transfer-Encoding and Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "unsupported Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "invalid Content-Length"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101"),
    ],
)  # fmt: skip
async def test_invalid_framing_is_a_protocol_error(serve: Any, client: Any, reply: bytes, words: str) -> None:
    c, transport = client
    peer = await serve(lambda *_: (reply, CLOSE))
    with pytest.raises(httpx.RemoteProtocolError, match=words):
        await get(c, peer.url())
    assert transport.idle_count() == 0


async def test_header_block_too_large(serve: Any, client: Any) -> None:
    c, _ = client
    huge = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * MAX_HEAD + b"\r\nContent-Length: 0\r\n\r\n"
    peer = await serve(lambda *_: (huge, STALL))
    with pytest.raises(httpx.RemoteProtocolError, match="header block larger than 65,536 bytes"):
        await get(c, peer.url())
    # an endless header block that never ends is cut at the same limit, not buffered without end
    peer = await serve(lambda *_: (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000, STALL))
    async with Fetcher() as f:
        result = await f.fetch(FetchRequest(url=peer.url(), settings=FetchSettings(allow_private=True)))
    assert (result.error_kind, result.error) == (
        "protocol",
        "malformed HTTP response: response header block larger than 65,536 bytes",
    )


async def test_trailers_are_bounded(serve: Any, client: Any) -> None:
    c, _ = client
    reply = chunked([b"abc"], trailers=b"X-U: 1\r\n" * (MAX_HEAD // 8 + 1))
    peer = await serve(lambda *_: (reply, STALL))
    with pytest.raises(httpx.RemoteProtocolError, match="trailer section longer"):
        await get(c, peer.url())


async def test_other_methods_are_refused(client: Any) -> None:
    c, _ = client
    with pytest.raises(httpx.LocalProtocolError, match="method POST is not supported"):
        await c.post("http://127.0.0.1:9/", content=b"x")


# --- the pool ---------------------------------------------------------------------------------------


async def test_keep_alive_reuse_counted_by_the_server(serve: Any, client: Any) -> None:
    c, transport = client
    peer = await serve(lambda *_: (ok(FEED), KEEP))
    for _ in range(5):
        assert (await get(c, peer.url()))[1] == FEED
    assert (peer.connections, len(peer.heads), transport.idle_count()) == (1, 5, 1)


async def test_pool_is_bounded_per_origin_and_in_total(serve: Any, client: Any) -> None:
    c, transport = client  # at most 2 idle per origin, 3 in all
    peers = [await serve(lambda *_: (ok(b"x"), KEEP)) for _ in range(3)]
    for peer in peers:
        async with (
            c.stream("GET", peer.url()) as r1,
            c.stream("GET", peer.url()) as r2,
            c.stream("GET", peer.url()) as r3,
        ):
            for r in (r1, r2, r3):
                await r.aread()
        assert peer.connections == 3
    assert transport.idle_count() == 3
    await get(c, peers[0].url())  # the oldest idle connections were the first peer's, and they went first
    assert peers[0].connections == 4


async def test_stale_pooled_connection_is_retried_once(serve: Any, client: Any) -> None:
    c, _ = client

    def answer(conn: int, n: int, head: bytes) -> Reply:
        if conn == 1 and n == 1:
            return b"", CLOSE  # the server dropped the idle connection just as the request arrived
        return ok(b"fresh %d" % conn), KEEP

    peer = await serve(answer)
    assert (await get(c, peer.url()))[1] == b"fresh 1"
    assert (await get(c, peer.url()))[1] == b"fresh 2"
    assert (peer.connections, len(peer.heads)) == (2, 3)


async def test_stale_retry_happens_only_once_and_only_for_reused(serve: Any, client: Any) -> None:
    c, _ = client

    def answer(conn: int, n: int, head: bytes) -> Reply:
        return (ok(b"x"), KEEP) if conn == 1 and n == 0 else (b"", CLOSE)

    peer = await serve(answer)
    await get(c, peer.url())
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await get(c, peer.url())
    assert peer.connections == 2  # reused one, then one fresh: no third try


async def test_partial_status_on_reused_connection_is_not_retried(serve: Any, client: Any) -> None:
    c, _ = client
    peer = await serve(lambda conn, n, head: (ok(b"x"), KEEP) if n == 0 else (b"HTTP/1.1 2", CLOSE))
    await get(c, peer.url())
    with pytest.raises(httpx.RemoteProtocolError, match="in the middle of the response headers"):
        await get(c, peer.url())
    assert peer.connections == 1


async def test_early_close_is_not_pooled(serve: Any, client: Any) -> None:
    c, transport = client
    big = FEED * 2_000
    peer = await serve(lambda *_: (ok(big), KEEP))
    async with c.stream("GET", peer.url()) as r:
        async for _piece in r.aiter_raw():
            break
    assert transport.idle_count() == 0
    await peer.closed.wait()  # the server saw the connection end
    assert (await get(c, peer.url()))[1] == big
    assert peer.connections == 2


async def test_cancellation_mid_body_closes_the_connection(serve: Any, client: Any) -> None:
    c, transport = client
    peer = await serve(lambda *_: (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + FEED[:10], STALL))
    first = asyncio.Event()

    async def read() -> None:
        async with c.stream("GET", peer.url()) as r:
            async for _piece in r.aiter_raw():
                first.set()

    task = asyncio.ensure_future(read())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.idle_count() == 0
    await peer.closed.wait()  # closed, not left open in a pool nor leaked


async def test_close_drops_idle_connections(serve: Any) -> None:
    transport = Transport(ssl_context=ssl.create_default_context())
    peer = await serve(lambda *_: (ok(b"x"), KEEP))
    async with httpx.AsyncClient(transport=transport) as c:
        await get(c, peer.url())
        assert transport.idle_count() == 1
    assert transport.idle_count() == 0
    await peer.closed.wait()


# --- TLS --------------------------------------------------------------------------------------------


async def test_tls_roundtrip_and_self_signed_refusal(serve: Any, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from tests.smtpserver import self_signed

    cert, server_ctx = self_signed(tmp_path)
    peer = await serve(lambda *_: (ok(b"secret"), KEEP), server_ctx)
    trusting = Transport(ssl_context=ssl.create_default_context(cafile=str(cert)))
    async with httpx.AsyncClient(transport=trusting) as c:
        for _ in range(2):
            assert (await get(c, peer.url(scheme="https")))[1] == b"secret"
    assert peer.connections == 1
    # the Fetcher's own context trusts only the CA bundle: the same words over both transports
    results = [await _fetch(peer.url(scheme="https"), transport) for transport in ("http1", "httpcore")]
    assert (
        results[0].error
        == results[1].error
        == "TLS error: certificate verify failed: self-signed certificate"
    )


# --- differential: the same answers as httpcore -----------------------------------------------------


MALFORMED = "malformed HTTP response: "


def _old_transport() -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(verify=_tls_context(), limits=httpx.Limits(max_connections=32))


async def _fetch(url: str, which: str, **settings: Any) -> FetchResult:
    transport = _old_transport() if which == "httpcore" else None
    async with Fetcher(transport=transport) as f:
        req = FetchRequest(
            url=url, settings=FetchSettings(**{"allow_private": True, "timeout": 5.0, **settings})
        )
        return await f.fetch(req)


def _comparable(r: FetchResult) -> tuple[Any, ...]:
    headers = {k: v for k, v in r.headers.items() if k != "date"}
    error = r.error
    if error is not None and error.startswith(MALFORMED):
        error = MALFORMED  # what follows is each parser's own account of the bytes (h11's or ours)
    return (
        r.status,
        r.http_status,
        r.error_kind,
        error,
        r.body,
        r.etag,
        r.last_modified,
        r.final_url,
        headers,
    )


def _framings(body: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(body)), 5))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    zipped = gzip.compress(body, mtime=0)
    return [
        ok(body, extra=b'Content-Type: application/xml\r\nETag: "e"\r\n'),
        chunked(pieces, ext=b";a=b"),
        chunked(pieces, trailers=b"Expires: never\r\n"),
        b"HTTP/1.0 200 OK\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n" + body,
        ok(zipped, extra=b"Content-Encoding: gzip\r\n"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(zipped), zipped),
        b"HTTP/1.1 404 Nope\r\nContent-Length: 3\r\n\r\nno!",
        b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 410 Gone\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body[:50],  # cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n" + body[:50],  # cut short
        b"\x00\xffSSH-2.0-not-http\r\n\r\n",
        b"",  # nothing at all
    ]


async def test_same_results_as_httpcore_over_real_feeds(serve: Any) -> None:
    rng = random.Random(7)
    replies = [reply for path in FEEDS for reply in _framings(path.read_bytes(), rng)]
    peer = await serve(lambda conn, n, head: (replies[int(head.split(b" ")[1].strip(b"/"))], CLOSE))
    for i in range(len(replies)):
        new, old = await _fetch(peer.url(f"/{i}"), "http1"), await _fetch(peer.url(f"/{i}"), "httpcore")
        assert _comparable(new) == _comparable(old), replies[i][:200]


async def test_same_results_as_httpcore_on_the_feed_server(feed_server: FeedServer, tmp_path: Path) -> None:
    def short(h: FeedRequestHandler) -> None:
        h.start(200, {"Content-Length": "1000"})
        h.wfile.write(FEED[:20])
        h.close_connection = True

    for i, path in enumerate(FEEDS):
        feed_server.serve(f"/plain{i}", path)
        feed_server.gzip(f"/gzip{i}", path.read_bytes())
        feed_server.deflate(f"/deflate{i}", path.read_bytes(), raw=bool(i % 2))
    feed_server.redirect("/moved", "/plain0", 301)
    feed_server.status("/missing", 404)
    feed_server.garbage("/garbage")
    feed_server.handler("/short", short)
    paths = [f"/{kind}{i}" for kind in ("plain", "gzip", "deflate") for i in range(len(FEEDS))]
    urls = [feed_server.url(p) for p in [*paths, "/moved", "/missing", "/garbage", "/short", "/nothing"]]
    urls.append(f"https://127.0.0.1:{feed_server.port}/plain0")  # TLS to a plain server
    for url in urls:
        new, old = await _fetch(url, "http1"), await _fetch(url, "httpcore")
        assert _comparable(new) == _comparable(old), url
