"""A real HTTP server on 127.0.0.1 for tests and benchmarks: feeds, errors, redirects and hostile peers.

Routes are a mutable map, path -> ``Route``, changed by helpers while the server runs::

    with FeedServer() as srv:                 # or the ``feed_server`` pytest fixture
        srv.serve("/feed.xml", Path("tests/data/feeds/rss2.xml"))
        srv.redirect("/old", "/feed.xml", 301)
        srv.url("/old")                       # http://127.0.0.1:<port>/old
        srv.requests("/feed.xml")             # what clients sent, headers lower-cased

Validators are automatic: ETag is a hash of the body and Last-Modified is fixed when a route is set (a
later route gets a later date), and a matching If-None-Match / If-Modified-Since gets a 304. A route can
turn validators off, or lie (304 whenever any validator is sent, whatever the body now is).

Hostile routes (``hang``, ``stall_body``, ``trickle``) wait on one ``threading.Event`` that ``close()``
sets, so a test's teardown never waits for them; ``close()`` also shuts every open connection, so idle
keep-alive handler threads end at once and the server joins all its threads before returning.
"""

from __future__ import annotations

import gzip as gzip_codec
import hashlib
import itertools
import json
import re
import socket
import socketserver
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

Body = bytes | str | Path
HandlerFn = Callable[["FeedRequestHandler"], None]
JsonValidator = Callable[[Any], "str | None"]

_BASE_DATE = 1_704_067_200  # 2024-01-01T00:00:00Z; each new route's Last-Modified is a minute later
_route_dates = itertools.count()
_HEADER_LINE = re.compile(r"^\s*Header:\s*([^:\s]+)\s*:\s?(.*?)\s*$", re.MULTILINE)
_PIECE = 64 * 1024


def _as_bytes(body: Body) -> bytes:
    if isinstance(body, Path):
        return body.read_bytes()
    return body.encode() if isinstance(body, str) else body


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class Route:
    """What one path answers. Mutable: a test may change ``status`` or ``body`` between requests."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/rss+xml"
    validators: bool = True
    lying: bool = False  # 304 to any conditional request, even after the body changed
    method: str = "GET"
    handler: HandlerFn | None = None
    validator: JsonValidator | None = None  # POST routes: error words for a JSON body, or None
    queue: deque[int] = field(default_factory=deque)  # statuses answered first, one per request
    last_modified: str = field(
        default_factory=lambda: formatdate(_BASE_DATE + 60 * next(_route_dates), usegmt=True)
    )

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'

    def not_modified(self, headers: dict[str, str]) -> bool:
        """Whether a conditional GET with ``headers`` gets a 304 (RFC 9110 §13.2.2 precedence)."""
        none_match = headers.get("if-none-match")
        since = headers.get("if-modified-since")
        if self.lying:
            return none_match is not None or since is not None
        if not self.validators:
            return False
        if none_match is not None:
            tags = [t.strip().removeprefix("W/") for t in none_match.split(",")]
            return "*" in tags or self.etag in tags
        if since is not None:
            try:
                return parsedate_to_datetime(since) >= parsedate_to_datetime(self.last_modified)
            except (TypeError, ValueError):
                return False
        return False


class FeedRequestHandler(BaseHTTPRequestHandler):
    """One connection's handler; custom route functions receive it and use the helpers below."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like real feed servers
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) and every request looks slow.
    disable_nagle_algorithm = True
    server: _Server
    route: Route
    body: bytes

    @property
    def feed(self) -> FeedServer:
        return self.server.feed

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the request log instead of stderr

    def setup(self) -> None:
        super().setup()
        self.feed._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client went away mid-response; that is what many tests do on purpose
        finally:
            self.feed._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(min(length, 10_000_000)) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.feed._log(Recorded(self.command, self.path, headers, self.body))
        route = self.feed._route(self.path)
        if route is None:
            self.respond(404, b"no such route\n", content_type="text/plain")
            return
        self.route = route
        try:
            if route.handler is not None:
                route.handler(self)
            elif route.method != self.command:
                self.respond(405, b"", headers={"Allow": route.method})
            elif self.command == "POST":
                self._answer_post(route)
            else:
                self._answer_get(route, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _answer_get(self, route: Route, headers: dict[str, str]) -> None:
        status = route.queue.popleft() if route.queue else route.status
        extra: dict[str, str] = {}
        if route.validators and not route.lying:
            extra = {"ETag": route.etag, "Last-Modified": route.last_modified}
        if status == 200 and route.not_modified(headers):
            self.start(304, {**extra, **route.headers})
            return
        self.respond(status, route.body, headers={**extra, **route.headers}, content_type=route.content_type)

    def _answer_post(self, route: Route) -> None:
        if route.validator is not None:
            try:
                problem = route.validator(json.loads(self.body))
            except ValueError as e:
                problem = f"invalid JSON: {e}"
            if problem is not None:
                self.respond(400, problem.encode(), content_type="text/plain")
                return
        status = route.queue.popleft() if route.queue else route.status
        self.respond(status, route.body, headers=route.headers, content_type=route.content_type)

    # --- helpers for custom handlers ---

    def start(self, status: int, headers: dict[str, str] | None = None) -> None:
        """Send the status line and headers; the caller frames the body (Content-Length or chunked)."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/rss+xml",
    ) -> None:
        """A complete response with Content-Length."""
        head = {"Content-Type": content_type} if content_type else {}
        head.update(headers or {})
        head.setdefault("Content-Length", str(len(body)))
        self.start(status, head)
        self.wfile.write(body)

    def chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body (empty data ends it)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stopping_now(self) -> bool:
        return self.feed.stopping.is_set()

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep that ends early at server close; True means the server is closing: stop now."""
        return self.feed.stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once
    feed: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response is what hostile-server tests do on purpose; stay quiet.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skipping it keeps start-up instant.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class FeedServer:
    """The server plus its route map and request log. Starts in ``__init__``; ``close()`` stops it."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._routes: dict[str, Route] = {}
        self._log_lock = threading.Lock()
        self._logged = threading.Condition(self._log_lock)
        self._records: list[Recorded] = []
        self._conns: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), FeedRequestHandler)
        self._server.feed = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        with self._log_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()  # joins the handler threads, all of which are now unblocked
        self._thread.join()

    # --- routes ---

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, route: Route) -> Route:
        self._routes[path] = route
        return route

    def serve(
        self,
        path: str,
        body: Body,
        content_type: str | None = "application/rss+xml",
        *,
        headers: dict[str, str] | None = None,
        validators: bool = True,
        lying: bool = False,
    ) -> Route:
        route = Route(
            _as_bytes(body),
            headers=dict(headers or {}),
            content_type=content_type,
            validators=validators,
            lying=lying,
        )
        return self.route(path, route)

    def status(self, path: str, code: int, body: Body = b"", headers: dict[str, str] | None = None) -> Route:
        route = Route(_as_bytes(body), code, dict(headers or {}), "text/plain", validators=False)
        return self.route(path, route)

    def redirect(self, path: str, target: str, code: int = 301) -> Route:
        """``target`` is a path on this server or an absolute URL (sent as given)."""
        return self.status(path, code, headers={"Location": target})

    def retry_after(self, path: str, code: int, value: str | int) -> Route:
        return self.status(path, code, headers={"Retry-After": str(value)})

    def raw(
        self,
        path: str,
        data: bytes,
        *,
        content_encoding: str | None = None,
        content_type: str | None = "application/rss+xml",
        chunked: bool = False,
    ) -> Route:
        """``data`` sent byte for byte (already encoded), labelled with ``content_encoding``."""
        headers = {"Content-Encoding": content_encoding} if content_encoding else {}
        if not chunked:
            return self.serve(path, data, content_type, headers=headers)

        def send(h: FeedRequestHandler) -> None:
            head = {"Transfer-Encoding": "chunked", **headers}
            h.start(200, {"Content-Type": content_type, **head} if content_type else head)
            for i in range(0, len(data), _PIECE):
                h.chunk(data[i : i + _PIECE])
            h.chunk(b"")

        return self.handler(path, send)

    def gzip(self, path: str, body: Body, content_type: str | None = "application/rss+xml") -> Route:
        data = gzip_codec.compress(_as_bytes(body), mtime=0)
        return self.raw(path, data, content_encoding="gzip", content_type=content_type)

    def deflate(self, path: str, body: Body, *, raw: bool = False) -> Route:
        """Deflate in the zlib wrapper (RFC 1950) or, with ``raw``, bare RFC 1951 as some servers send."""
        obj = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        data = obj.compress(_as_bytes(body)) + obj.flush()
        return self.raw(path, data, content_encoding="deflate")

    def handler(self, path: str, fn: HandlerFn, method: str = "GET") -> Route:
        return self.route(path, Route(handler=fn, method=method, validators=False))

    def garbage(self, path: str) -> Route:
        """Bytes that are not HTTP at all, then a closed connection."""

        def send(h: FeedRequestHandler) -> None:
            h.wfile.write(b"\x00\xffSSH-2.0-not-http\r\n\x89PNG garbage\r\n\r\n")
            h.close_connection = True

        return self.handler(path, send)

    def oversize(self, path: str, size: int, *, framing: str = "length") -> Route:
        """``size`` bytes streamed without building them: framing "length", "chunked" or "close"."""
        piece = b"<item>x</item>\n" * (_PIECE // 15)

        def send(h: FeedRequestHandler) -> None:
            head = {"Content-Type": "application/rss+xml"}
            if framing == "length":
                head["Content-Length"] = str(size)
            elif framing == "chunked":
                head["Transfer-Encoding"] = "chunked"
            else:
                head["Connection"] = "close"
                h.close_connection = True
            h.start(200, head)
            left = size
            while left > 0 and not h.stopping_now():
                part = piece[:left]
                if framing == "chunked":
                    h.chunk(part)
                else:
                    h.wfile.write(part)
                left -= len(part)
            if framing == "chunked":
                h.chunk(b"")

        return self.handler(path, send)

    def trickle(self, path: str, body: Body = b"<rss>" + b" " * 100, bytes_per_second: float = 1.0) -> Route:
        """Headers at once, then the body one byte at a time at ``bytes_per_second``."""
        data = _as_bytes(body)

        def send(h: FeedRequestHandler) -> None:
            h.start(200, {"Content-Type": "application/rss+xml", "Content-Length": str(len(data))})
            for i in range(len(data)):
                h.wfile.write(data[i : i + 1])
                h.wfile.flush()
                if h.wait(1.0 / bytes_per_second):
                    h.close_connection = True
                    return

        return self.handler(path, send)

    def hang(self, path: str) -> Route:
        """Accepts the request and never answers (until the server closes): headers never come."""

        def send(h: FeedRequestHandler) -> None:
            h.wait()
            h.close_connection = True

        return self.handler(path, send)

    def stall_body(self, path: str, prefix: bytes = b"<?xml version='1.0'?><rss><channel>") -> Route:
        """Headers promising a large body, a little of it, then silence: a body that never ends."""

        def send(h: FeedRequestHandler) -> None:
            h.start(200, {"Content-Type": "application/rss+xml", "Content-Length": "1000000"})
            h.wfile.write(prefix)
            h.wfile.flush()
            h.wait()
            h.close_connection = True

        return self.handler(path, send)

    def post_route(
        self,
        path: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        validator: JsonValidator | None = None,
    ) -> Route:
        """Accepts POSTed JSON (webhooks, Slack); ``posted(path)`` returns the bodies received.

        Change the answer per test through the returned route: ``route.status = 500``, or queue a few
        answers first with ``route.queue.extend([429, 500])``.
        """
        route = Route(b"ok", status, dict(headers or {}), "text/plain", validators=False, method="POST")
        route.validator = validator
        return self.route(path, route)

    def serve_corpus_file(self, path: str, file: Path) -> Route:
        """A feedparser corpus file, with the ``Header:`` lines of its leading comment as headers.

        When the file names ETag or Last-Modified, those are sent instead of the automatic validators.
        """
        data = file.read_bytes()
        headers: dict[str, str] = {}
        comment = re.search(rb"<!--(.*?)-->", data[:8192], re.DOTALL)
        if comment is not None:
            text = comment.group(1).decode("utf-8", "replace")
            headers = {m.group(1): m.group(2) for m in _HEADER_LINE.finditer(text)}
        names = {n.lower() for n in headers}
        content_type = None if "content-type" in names else "application/xml"
        own_validators = bool({"etag", "last-modified"} & names)
        return self.serve(path, data, content_type, headers=headers, validators=not own_validators)

    def _route(self, path: str) -> Route | None:
        return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    # --- request log ---

    def requests(self, path: str | None = None) -> list[Recorded]:
        """Requests received so far, oldest first; only those for ``path`` when given."""
        with self._log_lock:
            return [r for r in self._records if path is None or r.path == path]

    def wait_requests(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """Block until ``count`` requests for ``path`` arrived (for tests driving clients in threads).

        Raises TimeoutError after ``timeout`` seconds: a test waiting for nothing fails, never hangs.
        """
        with self._logged:
            if not self._logged.wait_for(lambda: len(self._matching(path)) >= count, timeout):
                raise TimeoutError(f"{count} request(s) for {path} did not arrive within {timeout}s")
            return self._matching(path)

    def _matching(self, path: str) -> list[Recorded]:
        return [r for r in self._records if r.path == path]

    def posted(self, path: str) -> list[Any]:
        """The JSON bodies POSTed to ``path``, oldest first."""
        return [r.json() for r in self.requests(path) if r.method == "POST"]

    def _log(self, record: Recorded) -> None:
        with self._logged:
            self._records.append(record)
            self._logged.notify_all()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._log_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


@contextmanager
def running_feed_server() -> Iterator[FeedServer]:
    """A started server for code outside pytest (bench/); closed on exit."""
    with FeedServer() as srv:
        yield srv
