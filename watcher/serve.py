"""HTTP out: an Atom feed per topic, /healthz and /metrics, as a Starlette app run by uvicorn.

    GET /  or  /topics         JSON index: each topic with its Atom URL and stored hits
    GET /topics/NAME.atom      the topic's newest hits, one entry per story (?limit=N, at most 1000)
    GET /healthz               200 "ok: …" while the daemon polls and the database takes writes, else 503
    GET /metrics               Prometheus text format (see watcher/metrics.py)

The app owns one connection of its own, used by one worker thread at a time: SQLite calls never run on the
event loop (which, inside the daemon, also drives the polls), and the daemon's connection and transactions
are never shared. Reads are single statements in WAL mode, so they never wait for or block the daemon's
writer; the only write is /healthz's one-row probe, in its own transaction.

`watcher serve` runs the app on its own; the daemon runs it as a task of its loop when `[serve] enabled`.
Either way the listening socket is bound before anything starts, so a busy port is an error at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import uvicorn
from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator
from lxml import etree
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from watcher import __version__, metrics
from watcher.config import Config, Topic
from watcher.errors import StoreError, WatcherError
from watcher.health import check_liveness
from watcher.models import MARK_CLOSE, MARK_OPEN, HitView
from watcher.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
ATOM_TYPE = "application/atom+xml; charset=utf-8"
# `updated` of a feed that never had an entry: fixed, so that its ETag is stable too
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Characters XML 1.0 forbids (lxml refuses them); feeds' text is cleaned upstream, this is the last guard.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- Atom ------------------------------------------------------------------------------------------------


def feed_id(topic: str) -> str:
    """A topic feed's Atom id: a name-based UUID, so it survives a new host name or base_url."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"watcher:topic:{topic}"))


def entry_id(topic: str, story: str) -> str:
    """An entry's Atom id, from the topic and the story's stable key: a reader sees a story once per topic,
    however many outlets carry it and however often its title is corrected."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"watcher:topic:{topic}:story:{story}"))


def _text(s: str) -> str:
    return _NOT_XML.sub("", s)


def _plain(snippet: str) -> str:
    return _text(snippet.replace(MARK_OPEN, "").replace(MARK_CLOSE, ""))


def _web(url: str | None) -> str | None:
    """Only http(s) links go out: a feed's `javascript:` link must not become a reader's clickable one."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else None


def _content_html(h: HitView) -> str:
    """The snippet with its matched words in bold, then every other outlet that carried the story."""
    # markers first: they are control characters, which _text() would remove
    marked = _text(html.escape(h.snippet).replace(MARK_OPEN, "<b>").replace(MARK_CLOSE, "</b>"))
    out = f"<p>{marked}</p>" if h.snippet else ""
    others = []
    for c in h.also_seen:
        name = html.escape(_text(str(c.get("feed") or "")))
        url = _web(str(c.get("url") or ""))
        others.append(f'<a href="{html.escape(url)}">{name}</a>' if url else name)
    if others:
        out += f"<p>{'Also at' if h.url else 'At'}: {', '.join(others)}</p>"
    return out


class _RelatedLinks(BaseEntryExtension):  # type: ignore[misc]
    """Writes an entry's `rel="related"` links. feedgen 1.0 cannot: its atom_entry() rebinds the name of
    each link's dict to the new element before reading `rel`, `type` and `title`, so every link it writes
    is bare, which Atom reads as another `alternate`. Its extension hook gets the finished element."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []  # (href, title)

    def extend_atom(self, entry: Any) -> Any:
        for href, title in self.links:
            etree.SubElement(entry, "link", href=href, rel="related", title=title)
        return entry


def atom_feed(topic: Topic, hits: Sequence[HitView], *, self_url: str) -> bytes:
    """A topic's hits as an Atom 1.0 document (RFC 4287), entries in the order given (newest first).

    Deterministic for the same hits, so its hash is a valid ETag. The entry's link is the outlet where the
    story was first matched; the other outlets are `rel="related"` links and are named in the content."""
    fg = FeedGenerator()
    fg.id(feed_id(topic.name))
    fg.title(f"Watcher: {topic.name}")
    fg.subtitle(_text(topic.config.query))
    fg.author({"name": "Watcher"})
    fg.link(href=self_url, rel="self", type="application/atom+xml")
    fg.generator("Watcher", version=__version__)
    fg.updated(max((h.first_seen for h in hits), default=EPOCH))
    for h in hits:
        fe = fg.add_entry(order="append")
        fe.id(entry_id(topic.name, h.story))
        fe.title(_text(h.title) or "(untitled)")
        if (url := _web(h.url)) is not None:
            fe.link(href=url, rel="alternate")  # written bare, which Atom reads as `alternate` (see above)
        fe.register_extension("related", _RelatedLinks, atom=True, rss=False)
        fe.related.links = [
            (other, _text(str(c.get("feed") or "")))
            for c in h.also_seen
            if (other := _web(str(c.get("url") or ""))) is not None and other != h.url
        ]
        fe.author({"name": _text(h.feed) or "unknown"})
        fe.updated(h.first_seen)
        if h.published is not None:
            fe.published(h.published)
        fe.summary(_plain(h.snippet), type="text")
        if content := _content_html(h):
            fe.content(content, type="html")
        for term in dict.fromkeys(h.terms):
            if term := _text(term):
                fe.category(term=term)
    return bytes(fg.atom_str(pretty=False))


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _not_modified(request: Request, tag: str) -> bool:
    given = request.headers.get("if-none-match")
    if given is None:
        return False
    return any(t.strip().removeprefix("W/") in (tag, "*") for t in given.split(","))


# --- the app ---------------------------------------------------------------------------------------------


class StoreWorker:
    """The app's own store connection and the one thread that uses it, opened on first use so that a
    missing or locked database is an answer (503), not a server that fails to start."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-serve-db")

    def _call(self, fn: Callable[[Store], T]) -> T:
        if self._store is None:
            self._store = self._open()
        return fn(self._store)

    async def run(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


def create_app(
    config: Config, open_store: Callable[[], Store] | None = None, *, clock: Callable[[], datetime] = utcnow
) -> Starlette:
    """The Starlette app over `config` and a store opened by `open_store` (default: the configured file)."""
    db = StoreWorker(open_store or (lambda: Store(config.database_path)))

    def base(request: Request) -> str:
        return config.serve.base_url or str(request.base_url).rstrip("/")

    def atom_url(request: Request, name: str) -> str:
        return f"{base(request)}/topics/{quote(name)}.atom"

    async def index(request: Request) -> Response:
        counts = await db.run(lambda s: s.hit_counts())
        return JSONResponse({
            "topics": [
                {"name": t.name, "query": t.config.query, "atom": atom_url(request, t.name),
                 "hits": counts.get(t.name, 0)}
                for t in config.topics
            ],
            "healthz": f"{base(request)}/healthz",
            "metrics": f"{base(request)}/metrics",
        })  # fmt: skip

    async def topic_feed(request: Request) -> Response:
        name = request.path_params["name"]
        topic = config.topic(name)
        if topic is None:
            return PlainTextResponse(f"no topic named {name!r}; see /topics\n", status_code=404)
        raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return PlainTextResponse(f"limit must be a number from 1 to {MAX_LIMIT}\n", status_code=400)
        self_url = atom_url(request, name) + (f"?limit={raw}" if "limit" in request.query_params else "")

        def render(store: Store) -> bytes:  # in the worker: lxml builds the XML off the event loop too
            return atom_feed(topic, store.hits(topic=name, newest=int(raw)), self_url=self_url)

        body = await db.run(render)
        tag = etag(body)
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if _not_modified(request, tag):
            return Response(status_code=304, headers=headers)
        return Response(body, headers={**headers, "Content-Type": ATOM_TYPE})

    async def healthz(request: Request) -> Response:
        try:
            state = await db.run(lambda s: check_liveness(s, clock(), config.serve.health_max_age))
        except StoreError as e:
            return PlainTextResponse(f"unhealthy: {e}\n", status_code=503)
        if not state.ok:
            return PlainTextResponse(f"unhealthy: {state.detail}\n", status_code=503)
        return PlainTextResponse(f"ok: {state.detail}\n")

    async def metrics_page(request: Request) -> Response:
        body = await db.run(lambda s: metrics.render(metrics.snapshot(s, config)))
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await db.close()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/topics", index),
            Route("/topics/{name}.atom", topic_feed),
            Route("/healthz", healthz),
            Route("/metrics", metrics_page),
        ],
        lifespan=lifespan,
    )


# --- running it ------------------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """Bind now, so that a taken port stops `watcher serve` or the daemon before they start anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise WatcherError(f"cannot serve HTTP on {host}:{port}: {e.strerror or e}") from e


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: whoever runs it owns SIGINT and SIGTERM (the
    daemon's two-stage shutdown; uvicorn would take the signals over and raise them again on exit)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """The app on a bound socket, as a task of the running loop; `stop()` asks it to finish."""

    def __init__(self, app: Starlette, sock: socket.socket, *, grace: float) -> None:
        self.sock = sock
        self.url = address(sock)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", server_header=False,
            timeout_graceful_shutdown=max(1, round(grace)),
        )  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._server.serve(sockets=[self.sock]))
        log.info("serving HTTP on %s (Atom at /topics/NAME.atom, /healthz, /metrics)", self.url)

    def stop(self) -> None:
        """Stop accepting; open requests get the grace period. A second call drops them at once."""
        if self._server.should_exit:
            self._server.force_exit = True
        self._server.should_exit = True

    async def shutdown(self) -> None:
        """Stop, unless already stopping, and wait until the server has finished."""
        if not self._server.should_exit:
            self.stop()
        await self.wait()

    async def wait(self) -> None:
        if self._task is None:
            self.sock.close()
            return
        try:
            await self._task
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP server failed")
        finally:
            self.sock.close()


async def serve_until_signalled(app: Starlette, sock: socket.socket, *, grace: float = 5.0) -> None:
    """`watcher serve`: run until SIGINT/SIGTERM; a second signal drops open requests at once."""
    server = HttpServer(app, sock, grace=grace)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, server.stop)
    try:
        server.start()
        await server.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
