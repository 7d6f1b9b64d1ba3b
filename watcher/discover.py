"""Finding a site's feeds from an address a person has at hand, usually the site's home page.

In order, stopping at the first step that finds something:

1. the address itself is a feed;
2. the page advertises feeds with ``<link rel="alternate" type="application/rss+xml" …>``
   (:func:`watcher.htmltext.feed_links`); each is fetched and kept only if it parses as a feed;
3. the usual paths of blog engines and CMSs (``/feed``, ``/rss.xml``, ``/?feed=rss2`` …) under the page's
   folder and the site's root, again kept only when they parse.

Every request goes through :class:`watcher.fetch.Fetcher` with the same bounds as a feed poll (deadline, size
cap, redirect and address checks); a candidate's failure is a note, never an exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from watcher.errors import ParseError
from watcher.fetch import Fetcher
from watcher.htmltext import feed_links
from watcher.models import FetchRequest, FetchResult, FetchSettings, FetchStatus
from watcher.parse import parse_feed
from watcher.urls import canonical_url

# Probed under the page's folder (when it is not the root) and under the root, in this order.
PROBE_PATHS = (
    "feed", "rss", "rss.xml", "atom.xml", "feed.xml", "index.xml", "feed.json", "index.rss", "atom",
    "feeds/posts/default", "?feed=rss2",
)  # fmt: skip
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")
_KINDS = {"rss": "RSS", "feed": "Atom", "rdf": "RDF"}
_LINK_KINDS = {"json": "JSON Feed", "atom": "Atom", "rdf": "RDF", "rss": "RSS"}


@dataclass(frozen=True, slots=True)
class Found:
    """A URL that answered with a feed."""

    url: str  # the address to configure: the permanent target when every redirect was permanent
    title: str | None
    kind: str  # RSS, Atom, RDF, JSON Feed
    items: int
    via: str  # "address" (the given URL), "link" (advertised by the page) or "probe" (a usual path)


@dataclass(frozen=True, slots=True)
class Discovery:
    url: str
    feeds: tuple[Found, ...]
    page_error: str | None = None  # the given address could not be fetched
    notes: tuple[str, ...] = ()  # why advertised feeds were left out


def feed_kind(body: bytes, hint: str = "") -> str:
    """The feed's format in words, from its first element (or a JSON body); ``hint`` is a media type."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "JSON Feed"
    for m in _FIRST_ELEMENT.finditer(head):
        if head[m.start() + 1 : m.start() + 2] not in (b"?", b"!"):
            name = m.group(2).decode("ascii", "replace").lower()
            if name in _KINDS:
                return _KINDS[name]
            break
    return next((kind for key, kind in _LINK_KINDS.items() if key in hint.lower()), "feed")


def probe_urls(page_url: str) -> list[str]:
    """The usual feed addresses for a page: under its folder first (when not the root), then the root."""
    parts = urlsplit(page_url)
    root = f"{parts.scheme}://{parts.netloc}/"
    folder = urljoin(page_url, ".") if parts.path not in ("", "/") else root
    bases = [folder, root] if folder != root else [root]
    out: list[str] = []
    for base in bases:
        for path in PROBE_PATHS:
            url = urljoin(base, path)
            if url not in out:
                out.append(url)
    return out


class _Checker:
    """Fetches candidates and keeps those that parse, once per final address and per body."""

    def __init__(self, fetcher: Fetcher, settings: FetchSettings, now: datetime, max_items: int) -> None:
        self.fetcher = fetcher
        self.settings = settings
        self.now = now
        self.max_items = max_items
        self._seen: set[str] = set()

    async def fetch(self, url: str) -> FetchResult:
        return await self.fetcher.fetch(FetchRequest(url=url, conditional=False, settings=self.settings))

    async def as_feed(self, result: FetchResult, via: str, hint: str = "", title: str = "") -> Found | str:
        """A Found, or words for why the fetched address is not a usable feed."""
        if result.status != FetchStatus.OK or result.body is None:
            return result.error or f"no feed ({result.status.value})"
        final = result.final_url or result.url
        try:
            parsed = await asyncio.to_thread(
                parse_feed, result.body, url=final, headers=dict(result.headers), now=self.now,
                max_items=self.max_items,
            )  # fmt: skip
        except ParseError as e:
            return e.detail
        return Found(
            url=result.permanent_url or result.url,
            title=parsed.title or title or None,
            kind=feed_kind(result.body, hint or result.headers.get("content-type", "")),
            items=len(parsed.items),
            via=via,
        )

    def first_time(self, found: Found, body_key: str) -> bool:
        keys = {canonical_url(found.url), body_key}
        if keys & self._seen:
            return False
        self._seen |= keys
        return True


async def discover(
    url: str, fetcher: Fetcher, settings: FetchSettings, *, now: datetime, max_items: int = 1000
) -> Discovery:
    """The feeds found at ``url``, in order of preference (see the module's docstring)."""
    checker = _Checker(fetcher, settings, now, max_items)
    page = await checker.fetch(url)
    if page.status == FetchStatus.OK and page.body is not None:
        itself = await checker.as_feed(page, "address")
        if isinstance(itself, Found):
            return Discovery(url=url, feeds=(itself,))
    elif page.http_status is None:
        # Nothing answered at all (DNS, refused, TLS, a blocked address): the usual paths would not either.
        return Discovery(url=url, feeds=(), page_error=page.error or page.status.value)
    base = page.final_url or url
    notes: list[str] = []
    links = feed_links(page.body, base) if page.body is not None else []
    found = await _gather(checker, [(link.url, "link", link.type, link.title) for link in links], notes)
    if not found:
        found = await _gather(checker, [(u, "probe", "", "") for u in probe_urls(base)], None)
    page_error = page.error if page.status != FetchStatus.OK else None
    return Discovery(url=url, feeds=tuple(found), page_error=page_error, notes=tuple(notes))


async def _gather(
    checker: _Checker, candidates: Sequence[tuple[str, str, str, str]], notes: list[str] | None
) -> list[Found]:
    """Check candidates concurrently (the fetcher's per-host limit keeps it polite); keep page order."""

    async def one(url: str, via: str, hint: str, title: str) -> tuple[Found | str, str]:
        result = await checker.fetch(url)
        outcome = await checker.as_feed(result, via, hint, title)
        return outcome, hashlib.sha256(result.body or b"").hexdigest()

    outcomes = await asyncio.gather(*(one(*c) for c in candidates))
    found: list[Found] = []
    for (url, *_), (outcome, body_key) in zip(candidates, outcomes, strict=True):
        if isinstance(outcome, Found):
            if checker.first_time(outcome, body_key):
                found.append(outcome)
        elif notes is not None:
            notes.append(f"{url}: {outcome}")
    return found
