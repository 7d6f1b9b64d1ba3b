"""The database as an archive: searching everything stored, and pruning what is older than the retention.

Search narrows with the FTS index (watcher/ftsquery.py turns the topic query into an FTS5 expression whose
answer is a superset of the matches) and then decides every candidate with the topic matcher, on the same
text and with the same TopicIndex the pipeline and ``watcher backtest`` use. So a search result is exactly
what a topic with that query would have matched, and ``--topic`` also applies the topic's feeds and languages.

Pruning keeps hits: an item older than the cutoff goes (with its history, index rows and near-duplicate
fingerprint) unless its story has a hit; ``include_hits`` lets such stories go too once all their items are
old. Age is the time an item was first seen (stored, indexed, never absent), not its claimed publication date.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from watcher.config import Config, Topic
from watcher.ftsquery import to_fts
from watcher.match import prepare
from watcher.models import body_text
from watcher.query import Query
from watcher.store import Store, parse_ts, ts
from watcher.store import fts as store_fts
from watcher.store.fts import PruneCounts
from watcher.topicindex import TopicIndex
from watcher.units import parse_duration

__all__ = [
    "PruneCounts",
    "PruneReport",
    "SearchHit",
    "SearchStats",
    "apply_retention",
    "parse_since",
    "prune",
    "search",
]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``/``12h`` back from ``now``, or a date (``2025-03-01``, midnight UTC) or ISO date-time.

    Raises ValueError with words for a person.
    """
    s = text.strip()
    if _DATE.match(s):
        try:
            if _DATE.fullmatch(s):
                return datetime.combine(date.fromisoformat(s), datetime.min.time(), UTC)
            when = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"not a date: {text!r} (write e.g. 2025-03-01 or 2025-03-01T08:00)") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        return now - timedelta(seconds=parse_duration(s))
    except ValueError:
        raise ValueError(f"not an age or a date: {text!r} (write e.g. 7d, 12h or 2025-03-01)") from None


# --- search ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHit:
    """A stored item the query matches, with why (the matched terms and a marked snippet)."""

    id: int
    feed: str
    feed_url: str
    title: str
    url: str | None
    guid: str
    published: datetime | None
    first_seen: datetime
    story: str
    language: str | None
    terms: tuple[str, ...]
    snippet: str
    field: str  # title | text: where the snippet comes from


@dataclass(slots=True)
class SearchStats:
    """Filled in while a search runs: how much the index narrowed it."""

    expression: str | None = None  # the FTS5 expression (None: the query narrows nothing, every item is read)
    candidates: int = 0  # items read and decided by the matcher
    matched: int = 0


@dataclass(frozen=True, slots=True)
class _Scope:
    feed_urls: list[str] | None
    language: Callable[[str | None], bool] | None


def _scope(config: Config | None, topic: Topic | None) -> _Scope:
    """A topic's feeds and languages, as ``watcher backtest --topic`` applies them."""
    if topic is None or config is None:
        return _Scope(None, None)
    return _Scope([f.url for f in config.feeds if topic.wants_feed(f)], topic.wants_language)


def search(
    store: Store,
    query: Query,
    *,
    since: datetime | None = None,
    feeds: Sequence[str] = (),
    topic: Topic | None = None,
    config: Config | None = None,
    limit: int | None = None,
    stats: SearchStats | None = None,
) -> Iterator[SearchHit]:
    """Stored items ``query`` matches, newest first (dated by publication, else first seen).

    ``feeds`` are names, titles or URLs; ``topic`` (with the ``config`` that defines it) restricts to the
    topic's feeds and languages, exactly as its polls would. ``stats`` is filled in as results stream.
    """
    st = stats if stats is not None else SearchStats()
    st.expression = to_fts(query)
    scope = _scope(config, topic)
    index = TopicIndex([("q", query)])
    rows = store_fts.search_rows(
        store, st.expression, since=ts(since), feed_refs=list(feeds), feed_urls=scope.feed_urls
    )
    for row in rows:
        if limit is not None and st.matched >= limit:
            return
        st.candidates += 1
        text = body_text(row["summary"], row["content"], row["full_text"] or "")
        m = index.match(prepare(row["title"], text)).get("q")
        if m is None or (scope.language is not None and not scope.language(row["language"])):
            continue
        st.matched += 1
        first_seen = parse_ts(row["first_seen"])
        assert first_seen is not None  # NOT NULL in the schema
        yield SearchHit(
            id=row["id"], feed=row["feed_name"], feed_url=row["feed_url"], title=row["title"],
            url=row["link"], guid=row["guid"], published=parse_ts(row["published"]), first_seen=first_seen,
            story=row["story"], language=row["language"], terms=m.terms, snippet=m.snippet, field=m.field,
        )  # fmt: skip


def unknown_feeds(store: Store, feeds: Sequence[str]) -> list[str]:
    """The names among ``feeds`` that no stored feed has as URL, name or title."""
    return [f for f in feeds if not store_fts.known_feed(store, f)]


# --- retention -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneReport:
    cutoff: datetime  # items first seen before this were considered
    counts: PruneCounts = field(default_factory=PruneCounts)
    dry_run: bool = False
    finished: bool = True  # False: stopped after max_batches; the rest goes next time

    def format(self) -> str:
        c = self.counts
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"items first seen before {ts(self.cutoff)}: {verb} {c.items} items, {c.stories} stories, "
            f"{c.hits} hits, {c.deliveries} deliveries, {c.history} history rows, "
            f"{c.neardup} near-duplicate index entries"
        ]
        if not self.finished:
            lines.append("stopped early: the rest goes on the next run")
        return "\n".join(lines)


def prune(
    store: Store,
    *,
    before: datetime,
    include_hits: bool = False,
    dry_run: bool = False,
    vacuum: bool = False,
    batch: int = 2000,
    max_batches: int | None = None,
) -> PruneReport:
    """Delete items first seen before ``before`` (see the module docstring for what is kept).

    Works in batches of ``batch`` items, one transaction each, so a large prune never holds the database
    for long; ``max_batches`` bounds one call (the daemon prunes a little every hour). ``vacuum`` compacts
    the index and the file afterwards, which rewrites the whole file: worth it after a large prune only.
    """
    cutoff = ts(before)
    assert cutoff is not None
    if dry_run:
        counts = store_fts.prune_plan(store, cutoff, include_hits=include_hits)
        return PruneReport(cutoff=before, counts=counts, dry_run=True)
    total = PruneCounts()
    done = 0
    finished = True
    while True:
        if max_batches is not None and done >= max_batches:
            finished = False
            break
        counts = store_fts.prune_batch(store, cutoff, include_hits=include_hits, limit=batch)
        done += 1
        total += counts
        if counts.items < batch:
            break
    if vacuum:
        store_fts.compact(store)
    return PruneReport(cutoff=before, counts=total, finished=finished)


def retention_cutoff(config: Config, now: datetime) -> datetime | None:
    """``now`` minus ``[watcher] retention``; None when the archive keeps everything (the default)."""
    keep = config.watcher.retention
    return None if keep is None else now - timedelta(seconds=keep)


def apply_retention(
    store: Store, config: Config, now: datetime, *, max_batches: int = 20
) -> PruneReport | None:
    """The daemon's periodic prune under ``[watcher] retention`` (hits kept), bounded per call."""
    cutoff = retention_cutoff(config, now)
    if cutoff is None:
        return None
    return prune(store, before=cutoff, max_batches=max_batches)
