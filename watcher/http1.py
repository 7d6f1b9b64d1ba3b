"""A lean HTTP/1.1 transport under the Fetcher's ``httpx.AsyncClient``: plain asyncio streams, a keep-alive pool.

Why not httpcore: a warm poll is hundreds of conditional GETs answered 304, and httpcore's general machinery
(h11 events, pool bookkeeping, per-operation timeouts) cost ~0.4 ms of CPU per request where the bytes on the
wire need a tenth of that. This transport does only what feeds need:

- GET and HEAD without a body, origin-form target, the client's headers in order (Host first);
- responses framed by chunked Transfer-Encoding (extensions and trailers skipped), Content-Length or the end
  of the connection; no body for HEAD, 1xx, 204 and 304; interim 1xx responses skipped;
- hard limits on the status line and headers (``MAX_HEAD`` in total) and on chunk size lines, so a hostile
  peer cannot make us buffer without end; invalid framing is an ``httpx.RemoteProtocolError``;
- a pool of idle keep-alive connections per (scheme, host, port), bounded per origin and in total. A
  connection goes back only when its body was read to the end and the response allows reuse; anything else
  (an early close, an error, a cancellation by the Fetcher's deadline) aborts it;
- a pooled connection that the server closed while it sat idle (end of stream or reset before the first
  byte of the status line) is retried once on a fresh connection, and only then.

Timeouts are not handled here: the Fetcher wraps every fetch in one total deadline (``asyncio.timeout``),
which cancels whatever this transport awaits. Errors keep their OS cause (``raise ... from``) so the
Fetcher's words for them (connection refused, DNS, TLS) come out as they did over httpcore.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import OrderedDict
from typing import Any

import httpx

__all__ = ["MAX_HEAD", "Transport"]

MAX_HEAD = 64 * 1024  # status line + headers (interim responses included), and trailers
MAX_CHUNK_LINE = 4096  # a chunk size line with its extensions
_READ = 64 * 1024  # most bytes asked of the socket at once, and most yielded per body piece
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: ([^\r\n]*))?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY_STATUS = frozenset({204, 304})
_METHODS = frozenset({"GET", "HEAD"})
_DISCONNECTED = "Server disconnected without sending a response."

Origin = tuple[str, str, int]


class _Stale(Exception):
    """A reused connection ended before the first byte of a response: the server closed it while idle."""


class _Conn:
    """One socket and the bytes read from it but not yet consumed."""

    __slots__ = ("buf", "origin", "reader", "reused", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.buf = b""
        self.reused = False

    def usable(self) -> bool:
        # An idle connection with unread bytes or a seen end of stream cannot carry another exchange.
        return not self.buf and not self.reader.at_eof() and not self.writer.transport.is_closing()

    def abort(self) -> None:
        # abort, not close: nothing is left to flush, and a TLS close would wait for the peer's close_notify.
        self.writer.transport.abort()

    async def fill(self) -> bool:
        """Read more bytes into ``buf``; False at the end of the stream."""
        try:
            data = await self.reader.read(_READ)
        except (OSError, ssl.SSLError) as e:
            raise httpx.ReadError(str(e) or type(e).__name__) from e
        if not data:
            return False
        self.buf += data
        return True

    async def read_line(self, limit: int, what: str) -> bytes:
        """One line without its end (CRLF or bare LF); RemoteProtocolError at the end of stream or past limit."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 1 :]
                if len(line) > limit:
                    raise httpx.RemoteProtocolError(f"{what} longer than {limit:,} bytes")
                return line.removesuffix(b"\r")
            if len(self.buf) > limit:
                raise httpx.RemoteProtocolError(f"{what} longer than {limit:,} bytes")
            if not await self.fill():
                raise httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body ({what} cut short)"
                )

    async def read_some(self, most: int) -> bytes:
        """Up to ``most`` bytes, at least one; b"" only at the end of the stream."""
        if not self.buf and not await self.fill():
            return b""
        piece, self.buf = self.buf[:most], self.buf[most:]
        return piece


def _parse_head(block: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """(status, version, reason, headers) of one response head without its blank line."""
    lines = block.split(b"\n")
    status_line = lines[0].removesuffix(b"\r")
    m = _STATUS.fullmatch(status_line)
    if m is None:
        raise httpx.RemoteProtocolError(f"invalid status line {status_line[:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines[1:]:
        line = raw.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding (RFC 9112 §5.2): part of the previous value
            if not headers:
                raise httpx.RemoteProtocolError("header block starts with a continuation line")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise httpx.RemoteProtocolError(f"invalid header line {line[:100]!r}")
        headers.append((name, value.strip()))
    return int(m[2]), b"HTTP/1." + m[1], m[3] or b"", headers


def _framing(
    method: str, status: int, version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[str, int, bool]:
    """(mode, length, reusable): mode "none", "length", "chunked" or "close" (RFC 9112 §6.3)."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection: list[bytes] = []
    for name, value in headers:
        key = name.lower()
        if key == b"content-length":
            lengths.extend(v.strip() for v in value.split(b","))
        elif key == b"transfer-encoding":
            codings.extend(v.strip().lower() for v in value.split(b",") if v.strip())
        elif key == b"connection":
            connection.extend(v.strip().lower() for v in value.split(b","))
    if version == b"HTTP/1.1":
        reusable = b"close" not in connection
    else:
        reusable = b"keep-alive" in connection and b"close" not in connection
    if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
        return "none", 0, reusable
    if codings:
        if lengths:
            raise httpx.RemoteProtocolError("response has both Transfer-Encoding and Content-Length")
        if codings != [b"chunked"]:
            words = b", ".join(codings).decode("latin-1")
            raise httpx.RemoteProtocolError(f"unsupported Transfer-Encoding {words!r} (only chunked)")
        return "chunked", 0, reusable
    if lengths:
        if len(set(lengths)) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
            words = b", ".join(lengths).decode("latin-1")
            raise httpx.RemoteProtocolError(f"invalid Content-Length {words!r}")
        return "length", int(lengths[0]), reusable
    return "close", 0, False


class _Body(httpx.AsyncByteStream):
    """The raw body of one response; gives its connection back to the pool only once read to the end."""

    def __init__(self, pool: Transport, conn: _Conn, mode: str, length: int, reusable: bool) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._mode = mode
        self._left = length  # "length": bytes still due; "chunked": bytes left in the current chunk
        self._reusable = reusable
        if mode == "none" or (mode == "length" and length == 0):
            self._done()

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            piece = await self._next_piece(conn)
        except BaseException:
            self._drop()  # an error or a cancellation mid-body: the connection's state is unknown
            raise
        if not piece:
            self._done()
            raise StopAsyncIteration
        return piece

    async def _next_piece(self, conn: _Conn) -> bytes:
        if self._mode == "length":
            if self._left == 0:
                return b""
            piece = await conn.read_some(min(self._left, _READ))
            if not piece:
                raise httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body ({self._left:,} bytes missing)"
                )
            self._left -= len(piece)
            return piece
        if self._mode == "close":
            return await conn.read_some(_READ)
        return await self._next_chunk_piece(conn)

    async def _next_chunk_piece(self, conn: _Conn) -> bytes:
        if self._left == 0:
            line = await conn.read_line(MAX_CHUNK_LINE, "chunk size line")
            m = _HEX.fullmatch(line.partition(b";")[0].strip())
            if m is None:
                raise httpx.RemoteProtocolError(f"invalid chunk size line {line[:100]!r}")
            size = int(m[0], 16)
            if size == 0:
                await self._skip_trailers(conn)
                return b""
            self._left = size
        piece = await conn.read_some(min(self._left, _READ))
        if not piece:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (incomplete chunk)"
            )
        self._left -= len(piece)
        if self._left == 0 and await conn.read_line(2, "chunk end"):
            raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
        return piece

    async def _skip_trailers(self, conn: _Conn) -> None:
        budget = MAX_HEAD
        while line := await conn.read_line(max(budget, 0), "trailer section"):
            budget -= len(line) + 2

    def _done(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._reusable:
                self._pool._put_idle(conn)
            else:
                conn.abort()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    async def aclose(self) -> None:
        self._drop()  # only an unfinished body still holds its connection, and it cannot be reused


class Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams with a bounded keep-alive pool (see the module docstring)."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, max_idle_per_origin: int = 4, max_idle: int = 32
    ) -> None:
        self._ssl = ssl_context
        self._per_origin = max_idle_per_origin
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Conn]] = {}
        self._lru: OrderedDict[_Conn, None] = OrderedDict()  # every idle connection, oldest first
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method
        if method not in _METHODS:
            raise httpx.LocalProtocolError(f"method {method} is not supported (only GET and HEAD)")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.raw_host.decode("ascii"), url.port or (443 if scheme == "https" else 80))
        head = _request_head(method, url.raw_path, request.headers.raw)
        conn = self._take_idle(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, method, head)
            except _Stale:
                pass  # closed by the server while idle: once more on a fresh connection
        conn = await self._connect(origin)
        try:
            return await self._exchange(conn, method, head)
        except _Stale:  # a fresh connection is never stale; this cannot happen, but must not pass silently
            raise httpx.RemoteProtocolError(_DISCONNECTED) from None

    async def _exchange(self, conn: _Conn, method: str, head: bytes) -> httpx.Response:
        try:
            conn.writer.write(head)
            status, version, reason, headers = await self._read_head(conn)
            mode, length, reusable = _framing(method, status, version, headers)
        except BaseException:
            conn.abort()
            raise
        body = _Body(self, conn, mode, length, reusable and not self._closed)
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": version, "reason_phrase": reason},
        )

    async def _read_head(self, conn: _Conn) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        searched = 0
        while True:
            m = _HEAD_END.search(conn.buf, max(0, searched - 3))
            if m is None:
                if len(conn.buf) > MAX_HEAD:
                    raise httpx.RemoteProtocolError(f"response header block larger than {MAX_HEAD:,} bytes")
                searched = len(conn.buf)
                try:
                    more = await conn.fill()
                except httpx.ReadError as e:
                    if conn.reused and not conn.buf and isinstance(e.__cause__, ConnectionError):
                        raise _Stale from e
                    raise
                if more:
                    continue
                if conn.reused and not conn.buf:
                    raise _Stale
                if not conn.buf.strip():
                    raise httpx.RemoteProtocolError(_DISCONNECTED)
                raise httpx.RemoteProtocolError("connection closed in the middle of the response headers")
            if m.end() > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"response header block larger than {MAX_HEAD:,} bytes")
            block, conn.buf = conn.buf[: m.start()], conn.buf[m.end() :]
            status, version, reason, headers = _parse_head(block)
            if 100 <= status < 200 and status != 101:
                conn.reused = False  # bytes arrived: no longer a candidate for a stale-connection retry
                searched = 0
                continue  # interim response (100 Continue, 103 Early Hints): the real one follows
            if status == 101:
                raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols")
            return status, version, reason, headers

    async def _connect(self, origin: Origin) -> _Conn:
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self._ssl if tls else None, server_hostname=host if tls else None
            )
        except (OSError, ssl.SSLError) as e:
            raise httpx.ConnectError(str(e) or type(e).__name__) from e
        return _Conn(origin, reader, writer)

    def _take_idle(self, origin: Origin) -> _Conn | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()  # the most recently used: the least likely to have timed out at the server
            del self._lru[conn]
            if not conns:
                del self._idle[origin]
            if conn.usable():
                conn.reused = True
                return conn
            conn.abort()
        return None

    def _put_idle(self, conn: _Conn) -> None:
        if self._closed or not conn.usable():
            conn.abort()
            return
        conns = self._idle.setdefault(conn.origin, [])
        if len(conns) >= self._per_origin:
            oldest = conns.pop(0)
            del self._lru[oldest]
            oldest.abort()
        elif len(self._lru) >= self._max_idle:
            oldest, _ = self._lru.popitem(last=False)
            others = self._idle[oldest.origin]
            others.remove(oldest)
            if not others:
                del self._idle[oldest.origin]
            oldest.abort()
            conns = self._idle.setdefault(conn.origin, [])
        conns.append(conn)
        self._lru[conn] = None

    def idle_count(self) -> int:
        """Idle pooled connections, for tests and diagnostics."""
        return len(self._lru)

    async def aclose(self) -> None:
        self._closed = True
        conns = list(self._lru)
        self._idle.clear()
        self._lru.clear()
        for conn in conns:
            conn.abort()
        # Let the loop run the aborted transports' connection_lost, so no socket outlives the transport.
        await asyncio.sleep(0)


def _request_head(method: str, target: bytes, headers: Any) -> bytes:
    parts = [method.encode("ascii"), b" ", target or b"/", b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    # Header values are ours, but a CR or LF slipping into one would split the request.
    if head.count(b"\n") != len(headers) + 2 or head.count(b"\r") != len(headers) + 2:
        raise httpx.LocalProtocolError("a request header contains a line break")
    return head
