"""Plain, frozen values passed between the pipeline's stages.

Nothing here does I/O. Stages take these in and hand these out, so each stage can be tested alone and the
pipeline only sequences calls: fetch -> FetchResult, parse -> ParsedFeed of Items, match -> Match,
store -> Hit rows, digest -> Digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

USER_AGENT = "Watcher/0.1 (media-monitoring feed watcher; +https://github.com/watcher-rss/watcher)"


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSettings:
    """Bounds for one fetch. Every hostile server costs at most these."""

    timeout: float = 30.0  # total deadline for the whole fetch, connect to last byte
    max_bytes: int = 10_000_000  # decompressed body cap
    max_redirects: int = 5
    allow_private: bool = False  # may redirects reach private/loopback/link-local addresses?
    user_agent: str = USER_AGENT


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchRequest:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    conditional: bool = True  # False: omit validators (the periodic check against lying servers)
    settings: FetchSettings = field(default_factory=FetchSettings)
    # The configured URL whose address zone this fetch may reach (see netguard); None: `url` itself. An
    # article page gets its feed's URL: the operator chose the feed's zone, not whatever its links name.
    zone_url: str | None = None
    accept: str | None = None  # None: feed types (fetch.ACCEPT)


class FetchStatus(StrEnum):
    OK = "ok"  # a body arrived
    NOT_MODIFIED = "not-modified"  # 304
    GONE = "gone"  # 410: stop polling, report
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """The outcome of one fetch, whatever happened: fetch never raises for a feed's fault."""

    url: str  # as requested
    status: FetchStatus
    http_status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None  # after redirects
    permanent_url: str | None = None  # set when every redirect hop was permanent (301/308)
    error: str | None = None  # words for a person: "HTTP 404 Not Found", "timed out after 30s"
    error_kind: str | None = None  # short machine tag: timeout, too-large, http-404, dns, tls, ...
    retry_after: float | None = None  # seconds, from Retry-After on 429/503
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One feed entry, normalised: plain text, UTC dates, a stable id."""

    guid: str  # identity within its feed: guid/id, else link, else hash(title+date)
    title: str
    link: str | None = None
    published: datetime | None = None  # aware, UTC; None when missing or absurd
    summary: str = ""  # plain text (HTML stripped, entities decoded)
    content: str = ""  # plain text of the full content when the feed has it
    author: str | None = None
    language: str | None = None
    id_source: str = "guid"  # guid | link | hash: how `guid` was obtained
    full_text: str = ""  # the article page's extracted text (feeds with full_text = true)
    full_text_status: str | None = None  # None: not asked for; ok | fallback
    full_text_error: str | None = None  # why a fallback happened, in words

    @property
    def text(self) -> str:
        return body_text(self.summary, self.content, self.full_text)


def body_text(summary: str, content: str, full_text: str = "") -> str:
    """The body the matcher searches: the content, with the summary in front unless the content has it;
    then the article's extracted full text, unless it already holds all of that."""
    feed_body = content or summary
    if content and summary and summary not in content:
        feed_body = f"{summary}\n{content}"
    if not full_text or feed_body in full_text:
        return full_text or feed_body
    return f"{feed_body}\n{full_text}" if feed_body else full_text


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    title: str | None
    link: str | None
    language: str | None
    items: tuple[Item, ...]
    warning: str | None = None  # bozo explanation for a feed that still yielded items
    parser: str = "feedparser"


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """Why a topic matched an item: the terms that matched and a marked snippet."""

    terms: tuple[str, ...]
    snippet: str  # plain text; matched words wrapped in MARK_OPEN / MARK_CLOSE
    field: str = "text"  # where the snippet came from: title | text


# Snippet markers: control characters that feeds cannot smuggle in (normalise strips them), so each
# renderer can turn them into <b>, *bold* or nothing after escaping the rest.
MARK_OPEN = "\x02"
MARK_CLOSE = "\x03"


class FeedStatus(StrEnum):
    NEVER = "never"
    OK = "ok"
    NOT_MODIFIED = "not-modified"
    ERROR = "error"
    GONE = "gone"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    url: str
    name: str | None = None
    title: str | None = None
    status: FeedStatus = FeedStatus.NEVER
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_polled: datetime | None = None
    last_success: datetime | None = None
    last_new_item: datetime | None = None
    last_unconditional: datetime | None = None
    next_poll: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    items: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOutcome:
    """One feed's poll, summarised for logs and the CLI."""

    url: str
    status: FeedStatus
    error: str | None = None
    new_items: int = 0
    updated_items: int = 0
    new_hits: int = 0
    parsed: bool = False
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HitView:
    """A hit as the CLI and digests see it (joined from the store)."""

    id: int
    topic: str
    story: str
    title: str
    url: str | None
    feed: str
    guid: str
    published: datetime | None
    first_seen: datetime
    backlog: bool
    terms: tuple[str, ...]
    snippet: str
    also_seen: tuple[Mapping[str, object], ...] = ()
    full_text_status: str | None = None  # ok | fallback | None (the feed does not ask for full text)
    full_text_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    """The part of a stored item that dedup decisions need."""

    id: int
    feed_url: str
    guid: str
    link: str | None
    canonical_url: str | None
    title: str
    content_hash: str
    story_id: int
