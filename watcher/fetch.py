"""The only module that speaks HTTP to feeds: one bounded, hostile-server-proof GET per call.

``Fetcher.fetch`` never raises for anything a server or the network does; each failure becomes a
``FetchResult`` with ``status=ERROR``, words in ``error`` and a tag in ``error_kind``:

=====================  ===========================================================================
error_kind             error (examples)
=====================  ===========================================================================
http-404, http-500 ..  "HTTP 404 Not Found"  (429/503 also carry ``retry_after``)
http-410               "HTTP 410 Gone" with status GONE: stop polling
timeout                "timed out after 30s (total deadline) while reading the body"
too-large              "body larger than 10,000,000 bytes" / "decompressed body larger than ..."
encoding               "stacked Content-Encoding refused (gzip, gzip)", "unsupported Content-Encoding 'zstd'"
decode                 "corrupt gzip body: invalid block type"
too-many-redirects     "too many redirects (6 > 5)"
redirect-loop          "redirect loop: http://a/ was already visited"
redirect               "HTTP 302 Found without a Location header"
private-address        "redirect to private address 10.0.0.1 refused" (see netguard)
bad-scheme, bad-url    "unsupported URL scheme 'ftp' (only http and https)", "invalid URL: ..."
dns                    "DNS lookup failed for host feed.invalid"
connect-refused        "connection refused"
tls                    "TLS error: wrong version number"
protocol               "malformed HTTP response: ...", "connection closed before the body was complete"
network, connect       anything else the socket layer reports, with its text
not-modified-unasked   "HTTP 304 Not Modified to a request without validators"
=====================  ===========================================================================

Why the body is read by hand: httpx decompresses each network read in one go, so one 64 KB read of a
gzip bomb becomes ~67 MB before any size check could run. We stream the raw bytes and inflate them in
bounded pieces, counting decompressed bytes against the cap, and stop at the first piece over it.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import os
import re
import ssl
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# httpx is used above our own transport (watcher/http1.py): httpcore, and with it anyio, h11, certifi and
# (when installed) trio, is never imported, which a warm poll's start-up notices.
import httpx

from watcher import models
from watcher.http1 import Transport
from watcher.models import FetchRequest, FetchResult, FetchStatus
from watcher.netguard import check_address, find_problem

__all__ = ["ACCEPT", "PAGE_ACCEPT", "Fetcher", "check_address", "parse_retry_after"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"  # article pages (full text)
MAX_RETRY_AFTER = 86_400.0  # a server may not park a feed for more than a day
_PIECE = 64 * 1024  # most decompressed bytes produced per step, so memory stays bounded by the cap
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_RETRY_AFTER_CODES = frozenset({429, 503})
_TOKEN_VALUE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")  # what may go back out in a request header


def _load_brotli() -> Any:
    """The brotli module if it can decompress in bounded steps (brotli >= 1.2), else None."""
    try:
        import brotli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if not hasattr(brotli.Decompressor(), "can_accept_more_data"):
        return None  # older releases inflate each call without an output limit: a bomb hazard
    return brotli


_brotli = _load_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if _brotli is not None else "gzip, deflate"


class _Failure(Exception):
    """A fetch failure already put into words; ``fetch`` turns it into an ERROR result."""

    def __init__(
        self, kind: str, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after


# --- Retry-After and status words -------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 §10.2.3).

    Capped at a day; negative, past or unparseable values give None, as if the header were absent.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 5322 "-0000": UTC with no claim about local time
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(seconds, MAX_RETRY_AFTER) if seconds >= 0 else None


def _status_words(code: int, reason: str) -> str:
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = reason if _TOKEN_VALUE.fullmatch(reason or "") else ""
    return f"HTTP {code} {phrase}".rstrip()


# --- bounded decoding -------------------------------------------------------------------------------


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _is_zlib_header(head: bytes) -> bool:
    # RFC 1950 §2.2: method 8 (deflate) and the two header bytes form a multiple of 31.
    return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class _Zlib:
    """gzip, or deflate in either form: servers send raw RFC 1951 as often as the zlib wrapper."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._gzip = encoding == "gzip"
        self._head = b""  # deflate: bytes held until the first two tell which form this is
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(wbits)
        yield from self._inflate(data)

    def flush(self) -> Iterator[bytes]:
        if self._obj is None and self._head:
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self._inflate(self._head)
        elif self._obj is not None:
            # Input may be used up while output is still pending inside zlib; drain it piece by piece.
            yield from self._inflate(b"")
        # A stream cut short is accepted as it is, as browsers do; the parser judges what arrived.

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                if self._obj.eof:
                    if not (self._gzip and data[:2] == b"\x1f\x8b"):
                        return  # bytes after the end of the stream: ignored, as browsers do
                    # Concatenated gzip members (RFC 1952 §2.2) form one body.
                    self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = self._obj.decompress(data, _PIECE)
                if out:
                    yield out
                data = self._obj.unused_data if self._obj.eof else self._obj.unconsumed_tail
                if not self._obj.eof and not data and len(out) < _PIECE:
                    return
                if self._obj.eof and not data:
                    return
        except zlib.error as e:
            raise _Failure("decode", f"corrupt {self._encoding} body: {e}") from e


class _Brotli:
    def __init__(self) -> None:
        self._obj: Any = _brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out: bytes = self._obj.process(data, output_buffer_limit=_PIECE)
            yield out
            # A full buffer means more output may be pending even when more input could be accepted.
            while not self._obj.is_finished() and (
                len(out) >= _PIECE or not self._obj.can_accept_more_data()
            ):
                out = self._obj.process(b"", output_buffer_limit=_PIECE)
                yield out
        except _brotli.error as e:
            raise _Failure("decode", f"corrupt br body: {e}") from e

    def flush(self) -> Iterator[bytes]:
        return iter(())


_ALIASES = {"x-gzip": "gzip", "gzip": "gzip", "deflate": "deflate", "br": "br"}


def _decoder_for(codings: list[str]) -> _Identity | _Zlib | _Brotli:
    """A bounded decoder for the response's Content-Encoding; refuses what it cannot bound."""
    tokens = [c.strip().lower() for c in codings]
    tokens = [c for c in tokens if c and c != "identity"]
    if not tokens:
        return _Identity()
    if len(tokens) > 1:
        # Each layer multiplies the bomb ratio, and no feed needs two; refuse rather than nest inflaters.
        raise _Failure("encoding", f"stacked Content-Encoding refused ({', '.join(tokens)})")
    name = _ALIASES.get(tokens[0])
    if name in ("gzip", "deflate"):
        return _Zlib(name)
    if name == "br" and _brotli is not None:
        return _Brotli()
    raise _Failure("encoding", f"unsupported Content-Encoding {tokens[0]!r}")


@dataclass(slots=True)
class _CappedBody:
    cap: int
    what: str  # "body" or "decompressed body", for the message
    parts: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.cap:
            raise _Failure("too-large", f"{self.what} larger than {self.cap:,} bytes")
        self.parts.append(piece)


async def _read_body(response: httpx.Response, cap: int) -> bytes:
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > cap:
        raise _Failure("too-large", f"body larger than {cap:,} bytes (Content-Length {int(length):,})")
    decoder = _decoder_for(response.headers.get_list("content-encoding", split_commas=True))
    body = _CappedBody(cap, "body" if isinstance(decoder, _Identity) else "decompressed body")
    async for chunk in response.aiter_raw():
        for piece in decoder.feed(chunk):
            body.add(piece)
    for piece in decoder.flush():
        body.add(piece)
    return b"".join(body.parts)


# --- network errors into words ----------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _tls_words(err: ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
        return f"TLS error: certificate verify failed: {err.verify_message}"
    reason = getattr(err, "reason", None)
    if isinstance(reason, str) and reason:
        return f"TLS error: {reason.lower().replace('_', ' ')}"
    return f"TLS error: {err}"


def _network_failure(exc: Exception, host: str) -> _Failure:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return _Failure("tls", _tls_words(cause))
        if isinstance(cause, ConnectionRefusedError):
            return _Failure("connect-refused", "connection refused")
        if isinstance(cause, ConnectionResetError):
            return _Failure("network", "connection reset by the server")
        if isinstance(cause, OSError) and cause.__class__.__name__ == "gaierror":
            return _Failure("dns", f"DNS lookup failed for host {host}")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return _Failure("bad-url", f"invalid URL: {text}")
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending a response" in text or "without sending complete message" in text:
            what = "the response" if "without sending a response" in text else "the body was complete"
            return _Failure("protocol", f"connection closed before {what}")
        return _Failure("protocol", f"malformed HTTP response: {text}")
    if isinstance(exc, httpx.ConnectError):
        return _Failure("connect", f"could not connect: {text}")
    return _Failure("network", f"network error: {text}")


# --- concurrency ------------------------------------------------------------------------------------


class _HostSlots:
    """Per-host semaphores, dropped when idle so a stream of one-off hosts cannot grow the map."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: Counter[str] = Counter()

    async def acquire(self, host: str) -> None:
        self._users[host] += 1
        try:
            await self._slots.setdefault(host, asyncio.Semaphore(self._per_host)).acquire()
        except BaseException:
            self._leave(host)
            raise

    def release(self, host: str) -> None:
        self._slots[host].release()
        self._leave(host)

    def _leave(self, host: str) -> None:
        self._users[host] -= 1
        if not self._users[host]:
            del self._users[host], self._slots[host]


@dataclass(slots=True)
class _Progress:
    """What a fetch is doing, so a timeout can say where it struck; also the slot it holds."""

    url: str
    phase: str = "while waiting for a connection"
    host: str | None = None
    hops: list[int] = field(default_factory=list)


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket; find_problem reports it in words
        return ""


class _LazyCertsContext(ssl.SSLContext):
    """What httpx builds by default (``ssl.create_default_context(cafile=certifi.where())``), except that the CA
    bundle is parsed at the first TLS handshake: parsing it costs every `watcher poll` ~16 ms of CPU, and a
    poll of plain-http feeds never needs it. Hostname checks and certificate verification are on from the
    start, so a handshake can never run without the bundle."""

    _certs_loaded = False

    def _load_certs(self) -> None:
        if not self._certs_loaded:
            import certifi

            self.load_verify_locations(cafile=certifi.where())
            self._certs_loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_certs()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_certs()
        return super().wrap_socket(*args, **kwargs)


def _tls_context() -> ssl.SSLContext:
    # the settings of ssl.create_default_context(), which httpx would call
    ctx = _LazyCertsContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylog
    return ctx


# --- the fetcher ------------------------------------------------------------------------------------


class Fetcher:
    """One keep-alive HTTP/1.1 client with global and per-host concurrency limits.

    Use as ``async with Fetcher() as f: result = await f.fetch(FetchRequest(url=...))``.
    """

    def __init__(
        self,
        *,
        max_connections: int = 32,
        per_host: int = 4,
        user_agent: str = models.USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: what carries the requests; by default watcher/http1.py's, with a keep-alive pool
        bounded like the fetches (another one, e.g. httpcore's, serves differential tests)."""
        self._global = asyncio.Semaphore(max_connections)
        self._hosts = _HostSlots(per_host)
        self._timeouts: dict[float, httpx.Timeout] = {}  # one per deadline, not one per request
        # trust_env=False: no proxy, netrc credentials or CA overrides picked up from the environment,
        # so what a fetch does depends only on the feed and the config (netrc would hand credentials
        # to whatever host a redirect names).
        # Our own HTTP/1.1 transport (watcher/http1.py) instead of httpcore's: a warm poll is mostly 304s, and
        # httpcore spends ten times the CPU the exchange needs. httpcore is then never imported at all.
        if transport is None:
            transport = Transport(
                ssl_context=_tls_context(), max_idle_per_origin=per_host, max_idle=max_connections
            )
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        )

    async def __aenter__(self) -> Fetcher:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, req: FetchRequest) -> FetchResult:
        """GET ``req.url`` within ``req.settings``; every outcome, failures included, is a result.

        Waiting for a free slot (global or per host) is not part of the deadline: many feeds on one
        host must queue, not time out before they start.
        """
        started = time.monotonic()
        progress = _Progress(url=req.url)
        try:
            async with self._global:
                await self._hosts.acquire(_netloc(req.url))
                progress.host = _netloc(req.url)
                try:
                    result = await self._fetch_within_deadline(req, progress)
                finally:
                    if progress.host is not None:  # None when a redirect hop's slot was never granted
                        self._hosts.release(progress.host)
        except _Failure as f:
            result = self._failed(req, progress, f)
        return replace(result, elapsed=time.monotonic() - started)

    async def fetch_page(self, url: str, *, settings: models.FetchSettings, zone_url: str) -> FetchResult:
        """GET an article page (full text) within a feed's bounds: same deadline, size cap, redirect limit
        and host slots as feeds, no validators, HTML preferred. Non-public addresses pass only in the zone
        of ``zone_url`` (the feed's configured URL) or with ``settings.allow_private``: a stranger's link
        must not reach the operator's network just because the feed is fetched from it."""
        req = FetchRequest(
            url=url, conditional=False, settings=settings, zone_url=zone_url, accept=PAGE_ACCEPT
        )
        return await self.fetch(req)

    async def _fetch_within_deadline(self, req: FetchRequest, progress: _Progress) -> FetchResult:
        timeout = req.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(req, progress)
        except TimeoutError:
            raise _Failure(
                "timeout", f"timed out after {timeout:g}s (total deadline) {progress.phase}"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as e:
            raise _network_failure(e, urlsplit(progress.url).hostname or progress.url) from e

    async def _follow(self, req: FetchRequest, progress: _Progress) -> FetchResult:
        settings = req.settings
        visited = {req.url}
        headers = self._headers(req)  # the same on every hop
        timeout = self._timeouts.get(settings.timeout)
        if timeout is None:
            timeout = self._timeouts[settings.timeout] = httpx.Timeout(settings.timeout + 1)
        while True:
            progress.phase = "while resolving the host"
            zone = req.zone_url or req.url
            problem = await find_problem(progress.url, allow_private=settings.allow_private, zone_url=zone)
            if problem is not None:
                prefix = "redirect to " if progress.hops else ""
                raise _Failure(problem.kind, prefix + problem.message)
            await self._move_slot(progress)
            progress.phase = "while connecting or waiting for the response headers"
            request = self._client.build_request("GET", progress.url, headers=headers, timeout=timeout)
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code not in _REDIRECTS:
                    asked = "If-None-Match" in headers or "If-Modified-Since" in headers
                    return await self._finish(req, response, progress, asked)
                target = _redirect_target(response, progress.url)
                progress.hops.append(response.status_code)
                if target in visited:
                    raise _Failure("redirect-loop", f"redirect loop: {target} was already visited")
                if len(progress.hops) > settings.max_redirects:
                    n, limit = len(progress.hops), settings.max_redirects
                    raise _Failure("too-many-redirects", f"too many redirects ({n} > {limit})")
                visited.add(target)
                progress.url = target
            finally:
                await response.aclose()

    async def _move_slot(self, progress: _Progress) -> None:
        # One host slot at a time: holding the old host's while waiting for the next could deadlock
        # two fetches redirecting across each other's hosts.
        host = _netloc(progress.url)
        if host == progress.host:
            return
        progress.phase = "while waiting for a per-host slot"
        if progress.host is not None:
            self._hosts.release(progress.host)
            progress.host = None
        await self._hosts.acquire(host)
        progress.host = host

    def _headers(self, req: FetchRequest) -> dict[str, str]:
        headers: dict[str, str] = {}
        if req.accept is not None:
            headers["Accept"] = req.accept
        if req.settings.user_agent != models.USER_AGENT:
            headers["User-Agent"] = req.settings.user_agent
        if req.conditional:
            # A stored validator with a control character would make the request itself invalid.
            if req.etag and _TOKEN_VALUE.fullmatch(req.etag):
                headers["If-None-Match"] = req.etag
            if req.last_modified and _TOKEN_VALUE.fullmatch(req.last_modified):
                headers["If-Modified-Since"] = req.last_modified
        return headers

    async def _finish(
        self, req: FetchRequest, response: httpx.Response, progress: _Progress, asked: bool
    ) -> FetchResult:
        """The result of a final (non-redirect) response; ``asked``: the request carried validators."""
        code = response.status_code
        base = _base_result(req, response, progress)
        if code == 304:
            if not asked:
                words = "HTTP 304 Not Modified to a request without validators"
                raise _Failure("not-modified-unasked", words, http_status=code)
            return replace(
                base,
                status=FetchStatus.NOT_MODIFIED,
                etag=base.etag or req.etag,
                last_modified=base.last_modified or req.last_modified,
            )
        words = _status_words(code, response.reason_phrase)
        if code == 410:
            return replace(base, status=FetchStatus.GONE, error=words, error_kind="http-410")
        if not 200 <= code < 300:
            retry = None
            if code in _RETRY_AFTER_CODES:
                retry = parse_retry_after(response.headers.get("retry-after"))
            raise _Failure(f"http-{code}", words, http_status=code, retry_after=retry)
        progress.phase = "while reading the body"
        body = await _read_body(response, req.settings.max_bytes)
        return replace(base, status=FetchStatus.OK, body=body)

    def _failed(self, req: FetchRequest, progress: _Progress, f: _Failure) -> FetchResult:
        return FetchResult(
            url=req.url,
            status=FetchStatus.ERROR,
            http_status=f.http_status,
            final_url=progress.url,
            error=f.message,
            error_kind=f.kind,
            retry_after=f.retry_after,
            etag=req.etag,
            last_modified=req.last_modified,
        )


def _redirect_target(response: httpx.Response, url: str) -> str:
    location = response.headers.get("location", "").strip()
    if not location:
        words = _status_words(response.status_code, response.reason_phrase)
        raise _Failure("redirect", f"{words} without a Location header", http_status=response.status_code)
    try:
        target = httpx.URL(url).join(location)
    except httpx.InvalidURL as e:
        raise _Failure("redirect", f"redirect to an invalid URL {location!r}: {e}") from e
    return str(target.copy_with(fragment=None))


def _base_result(req: FetchRequest, response: httpx.Response, progress: _Progress) -> FetchResult:
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    permanent = bool(progress.hops) and all(code in _PERMANENT for code in progress.hops)
    return FetchResult(
        url=req.url,
        status=FetchStatus.OK,
        http_status=response.status_code,
        headers=headers,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        final_url=progress.url,
        permanent_url=progress.url if permanent else None,
    )
