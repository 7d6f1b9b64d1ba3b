"""One poll of one feed, and of many: the only orchestrator, shared by `watcher poll` and the daemon.

    state = store.feed_state(url)
    result = fetch(request built from state)        # never raises for the feed's faults
    parsed = parse(result.body)                     # skipped on 304 or when the body hash is unchanged
    pages = full text of the new items' articles    # feeds with full_text = true (fulltext.py)
    for item in parsed.items:
        decision = dedup.classify(item, stored)     # new / updated / seen
        story = same id | same canonical URL | near-duplicate | a new story
        hits = topic_index.match(document(item))
    store everything of this feed atomically, with the feed's new state (a SAVEPOINT in a group commit:
    feeds that finish while the writer is busy share one transaction, store/batch.py)

A feed's failure becomes a stored error and a PollOutcome; it never stops the other feeds.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from watcher import dedup, policy
from watcher.archive import retention_cutoff
from watcher.config import Config, FeedConfig, Topic
from watcher.dedup import Classified, Decision
from watcher.errors import ParseError
from watcher.fetch import Fetcher
from watcher.fingerprint import Fingerprint, NearDupSettings, band_keys, fingerprint
from watcher.match import prepare
from watcher.models import (
    FeedState,
    FeedStatus,
    FetchRequest,
    FetchResult,
    FetchStatus,
    Item,
    Match,
    ParsedFeed,
    PollOutcome,
    StoredItem,
)
from watcher.parse import parse_feed
from watcher.query import Query
from watcher.store import Store, neardup
from watcher.store.batch import MAX_JOBS, GroupCommit
from watcher.stories import NewItem, StoryFinder
from watcher.text import fold
from watcher.topicindex import TopicIndex

if TYPE_CHECKING:  # imported where needed: trafilatura costs ~0.13 s of start-up to every `watcher poll`
    from watcher import fulltext

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What a poll needs, built once by the CLI or the daemon."""

    config: Config
    store: Store
    fetcher: Fetcher
    clock: Callable[[], datetime] = utcnow
    # None: parse in the default thread pool. A ProcessPoolExecutor also takes each new item's fingerprint and
    # topic matching off the event loop's process, so parsing and analysis use the other cores.
    parse_executor: Executor | None = None

    def __post_init__(self) -> None:
        self._indexes: dict[tuple[str, ...], tuple[TopicIndex, dict[str, Topic]]] = {}
        self.neardup = NearDupSettings()
        # poll_all keeps at most twice the fetch concurrency of feeds in flight: once that many wait on the
        # writer, no other job can come, so the batch is full
        self.writer = GroupCommit(self.store, max_jobs=min(MAX_JOBS, 2 * self.config.watcher.concurrency))

    def topics_for(self, feed: FeedConfig) -> tuple[TopicIndex, dict[str, Topic]]:
        """The compiled index of the topics that watch this feed, shared by feeds with the same topics."""
        topics = [t for t in self.config.topics if t.wants_feed(feed)]
        key = tuple(t.name for t in topics)
        if key not in self._indexes:
            self._indexes[key] = (
                TopicIndex([(t.name, t.query) for t in topics]),
                {t.name: t for t in topics},
            )
        return self._indexes[key]


def analysis_pool(feeds: int) -> ProcessPoolExecutor | None:
    """A process pool for parsing and item analysis, one worker per CPU beyond the first; None when it would
    not pay (one CPU, or too few feeds to repay the workers' start).

    The event-loop process keeps a CPU to itself: it fetches and is the only writer, and in a cold cycle it is
    the bottleneck. Measured on 2 CPUs at 2,000 feeds, a second worker made the cold cycle only 7 % faster
    (it competes with the writer for the same two CPUs) and cost 20 MB of memory (peak 153 MB against 133).

    Create it before opening the database and before any thread starts: the workers are forked at once
    (a no-op job forces that), so they inherit the imported modules and no lock held by another thread.
    """
    cpus = os.cpu_count() or 1
    if cpus < 2 or feeds < 16:
        return None
    # Objects that exist now are moved out of the collector's reach: a collection in a worker would otherwise
    # write to every inherited object's header and copy the pages shared with the parent (~10 MB less PSS).
    # Garbage is collected first (~20 ms): frozen garbage would never be freed.
    gc.collect()
    gc.freeze()
    pool = ProcessPoolExecutor(max_workers=cpus - 1, mp_context=multiprocessing.get_context("fork"))
    pool.submit(int).result()
    return pool


def sync_feeds(rt: Runtime) -> None:
    rt.store.sync_feeds(((f.url, f.name) for f in rt.config.feeds), rt.clock())


def age_out(rt: Runtime) -> int:
    """Drop near-duplicate index entries older than the dedup window: their stories are closed."""
    before = rt.clock() - timedelta(seconds=rt.config.watcher.dedup_window)
    with rt.store.transaction():
        return neardup.prune(rt.store.conn, before)


async def poll_all(rt: Runtime, feeds: Sequence[FeedConfig] | None = None) -> list[PollOutcome]:
    """Poll feeds concurrently (the fetcher bounds concurrency globally and per host).

    At most twice the fetch concurrency of feeds are between their request and their commit at once:
    when storing is the slower stage, fetched bodies and parsed items would otherwise pile up in memory.
    """
    targets = list(rt.config.feeds if feeds is None else feeds)
    in_flight = asyncio.Semaphore(2 * rt.config.watcher.concurrency)
    # one query for every feed's state instead of one per feed (a warm cycle is little else per feed)
    states = {s.url: s for s in rt.store.feed_states()} if len(targets) > 1 else {}

    async def one(feed: FeedConfig) -> PollOutcome:
        async with in_flight:
            return await poll_feed(rt, feed, states.pop(feed.url, None))

    return list(await asyncio.gather(*(one(f) for f in targets)))


async def poll_feed(rt: Runtime, feed: FeedConfig, state: FeedState | None = None) -> PollOutcome:
    """Poll one feed; ``state`` is its stored state when the caller read it already."""
    started = time.monotonic()
    try:
        return await _poll_feed(rt, feed, started, state)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug must cost one feed, not the cycle
        log.exception("feed=%s internal error while polling", feed.url)
        await _record_failure(
            rt, feed, rt.clock(), f"internal error: {type(e).__name__}: {e}", None, "internal"
        )
        return PollOutcome(url=feed.url, status=FeedStatus.ERROR, error=str(e), elapsed=_since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


async def _poll_feed(rt: Runtime, feed: FeedConfig, started: float, state: FeedState | None) -> PollOutcome:
    store, cfg = rt.store, rt.config
    if state is None:
        state = store.feed_state(feed.url)
    if state.status == FeedStatus.GONE:
        return PollOutcome(url=feed.url, status=FeedStatus.GONE, error=state.last_error)
    now = rt.clock()
    unconditional = policy.needs_unconditional(state.last_unconditional, now, cfg.watcher.unconditional_every)
    request = FetchRequest(
        url=feed.url,
        etag=state.etag,
        last_modified=state.last_modified,
        conditional=not unconditional,
        settings=cfg.fetch_settings(feed),
    )
    result = await rt.fetcher.fetch(request)
    now = rt.clock()
    interval = cfg.feed_interval(feed)
    common: dict[str, object] = {"last_polled": now, "http_status": result.http_status}
    if unconditional and result.status in (FetchStatus.OK, FetchStatus.NOT_MODIFIED):
        common["last_unconditional"] = now

    if result.status == FetchStatus.GONE:
        msg = "HTTP 410 Gone: the publisher removed this feed; it is no longer polled (fix or remove its URL)"
        await rt.writer.run(partial(store.record_poll, feed.url, status=FeedStatus.GONE, last_error=msg,
                                    error_kind="gone", next_poll=None, **common))  # fmt: skip
        log.warning("feed=%s gone (HTTP 410), no longer polled", feed.url)
        return PollOutcome(url=feed.url, status=FeedStatus.GONE, error=msg, elapsed=_since(started))
    if result.status == FetchStatus.ERROR:
        error = result.error or "fetch failed"
        failures = await _record_failure(rt, feed, now, error, result.retry_after, result.error_kind, common)
        log.warning("feed=%s fetch failed (%d in a row): %s", feed.url, failures, error)
        return PollOutcome(url=feed.url, status=FeedStatus.ERROR, error=error, elapsed=_since(started))

    ok_state: dict[str, object] = {
        **common,
        "failures": 0,
        "last_error": None,
        "error_kind": None,
        "last_success": now,
        "next_poll": policy.next_poll_ok(now, interval + policy.jitter(feed.url, interval)),
        "etag": result.etag if result.etag is not None else state.etag,
        "last_modified": result.last_modified if result.last_modified is not None else state.last_modified,
        "permanent_url": result.permanent_url,
    }
    body_hash = hashlib.sha256(result.body).hexdigest() if result.body is not None else None
    if result.status == FetchStatus.NOT_MODIFIED or (body_hash is not None and body_hash == state.body_hash):
        # An unchanged body is never parsed again, even when the server's validators said otherwise.
        await rt.writer.run(partial(store.record_poll, feed.url, status=FeedStatus.NOT_MODIFIED, **ok_state))
        return PollOutcome(url=feed.url, status=FeedStatus.NOT_MODIFIED, elapsed=_since(started))

    try:
        parsed, keys = await _parse(rt, feed, result, now)
    except ParseError as e:
        failures = await _record_failure(rt, feed, now, e.detail, None, "parse", common)
        log.warning("feed=%s parse failed (%d in a row): %s", feed.url, failures, e.detail)
        return PollOutcome(url=feed.url, status=FeedStatus.ERROR, error=e.detail, elapsed=_since(started))
    # the body is parsed: while this feed waits for the writer, only its items need memory
    del result

    first_poll = state.last_success is None
    # Article pages are fetched before the feed's transaction opens: no write lock is held over the network.
    pages = await _full_texts(rt, feed, parsed, now, first_poll) if cfg.full_text(feed) else None
    prepared = await _prepare(rt, feed, parsed, keys) if pages is None else None

    def write() -> tuple[int, int, int]:
        new, updated, hits = _store_items(rt, feed, parsed, now, first_poll, pages, prepared)
        store.record_poll(
            feed.url, status=FeedStatus.OK, body_hash=body_hash, title=parsed.title, site_url=parsed.link,
            warning=parsed.warning, **ok_state, **({"last_new_item": now} if new else {}),
        )  # fmt: skip
        return new, updated, hits

    new, updated, hits = await rt.writer.run(write)
    return PollOutcome(
        url=feed.url, status=FeedStatus.OK, new_items=new, updated_items=updated, new_hits=hits, parsed=True,
        elapsed=_since(started),
    )  # fmt: skip


Keys = list[tuple[str, str | None]]


async def _parse(
    rt: Runtime, feed: FeedConfig, result: FetchResult, now: datetime
) -> tuple[ParsedFeed, Keys | None]:
    """The parsed feed, and each item's dedup keys when a process pool computed them too."""
    assert result.body is not None
    url = result.final_url or feed.url
    job = partial(
        parse_job,
        result.body,
        url=url,
        headers=dict(result.headers),
        now=now,
        max_items=rt.config.max_items(feed),
        with_keys=isinstance(rt.parse_executor, ProcessPoolExecutor),
    )
    out = await asyncio.get_running_loop().run_in_executor(rt.parse_executor, job)
    if isinstance(out, str):
        raise ParseError(url, out)
    return _within_retention(rt, now, *out)


def _within_retention(
    rt: Runtime, now: datetime, parsed: ParsedFeed, keys: Keys | None
) -> tuple[ParsedFeed, Keys | None]:
    """Drop items published before the retention horizon: the archive would prune them, and a feed that still
    lists a pruned item must not bring it back as new (and alert for it again)."""
    horizon = retention_cutoff(rt.config, now)
    if horizon is None:
        return parsed, keys
    wanted = [i for i, item in enumerate(parsed.items) if item.published is None or item.published >= horizon]
    if len(wanted) == len(parsed.items):
        return parsed, keys
    items = tuple(parsed.items[i] for i in wanted)
    return replace(parsed, items=items), [keys[i] for i in wanted] if keys is not None else None


def parse_job(
    body: bytes, *, url: str, headers: dict[str, str], now: datetime, max_items: int, with_keys: bool = False
) -> tuple[ParsedFeed, Keys | None] | str:
    """parse_feed for an executor, plus each item's dedup.item_keys if asked. A ParseError comes back as its
    detail, because the exception cannot be pickled back from a worker process (its constructor takes two
    arguments)."""
    try:
        parsed = parse_feed(body, url=url, headers=headers, now=now, max_items=max_items)
    except ParseError as e:
        return e.detail
    return parsed, [dedup.item_keys(i) for i in parsed.items] if with_keys else None


# A new item's fingerprint, its LSH band keys (hashing them is worker work too) and its folded body (what the
# search index stores), and the item's topic matches, all computed off the writer's CPU.
Analysis = tuple[Fingerprint | None, tuple[int, ...], dict[str, Match], str | None]
_WORKER_INDEXES: dict[tuple[tuple[str, Query], ...], TopicIndex] = {}


def analyse_items(
    texts: Sequence[tuple[str, str, bool]], topics: tuple[tuple[str, Query], ...]
) -> list[Analysis]:
    """For (title, text, is_new) triples: the fingerprint of each new item and each item's topic matches.
    Runs in a worker process, which compiles each topic set once."""
    index = _WORKER_INDEXES.get(topics)
    if index is None:
        index = _WORKER_INDEXES[topics] = TopicIndex(list(topics))
    out: list[Analysis] = []
    for title, text, is_new in texts:
        found = index.match(prepare(title, text)) if topics else {}
        # concrete Matches: they are built here, on the worker's CPU, and pickle without their document
        matches = {name: Match(terms=m.terms, snippet=m.snippet, field=m.field) for name, m in found.items()}
        folded = fold(text) if is_new else None  # an update is re-indexed by the store's trigger
        fp = fingerprint(title, text, folded_text=folded) if is_new else None
        out.append((fp, tuple(band_keys(fp)) if fp is not None else (), matches, folded))
    return out


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One feed's classification and per-item analysis, done before its transaction opens."""

    known: dict[str, StoredItem]
    classified: list[Classified]
    analyses: dict[str, Analysis]  # by the (possibly scoped) guid of each new or updated item


async def _prepare(rt: Runtime, feed: FeedConfig, parsed: ParsedFeed, keys: Keys | None) -> _Prepared | None:
    """Fingerprints and matches of the new and updated items, computed in the process pool; None without a
    pool (the items are then analysed inline, in the transaction)."""
    if not isinstance(rt.parse_executor, ProcessPoolExecutor):
        return None
    known = _known(rt, feed, parsed)
    classified = [
        dedup.classify(
            raw,
            known.get(raw.guid),
            known.get(dedup.scoped_guid(raw)) if raw.link else None,
            keys[i] if keys else None,
        )
        for i, raw in enumerate(parsed.items)
    ]
    todo = [c for c in classified if c.decision != Decision.SEEN]
    analyses: dict[str, Analysis] = {}
    if todo:
        _, topics = rt.topics_for(feed)
        texts = [(c.item.title, c.item.text, c.decision == Decision.NEW) for c in todo]
        job = partial(analyse_items, texts, tuple((name, t.query) for name, t in topics.items()))
        results = await asyncio.get_running_loop().run_in_executor(rt.parse_executor, job)
        analyses = {c.item.guid: a for c, a in zip(todo, results, strict=True)}
    return _Prepared(known, classified, analyses)


async def _record_failure(
    rt: Runtime,
    feed: FeedConfig,
    now: datetime,
    error: str,
    retry_after: float | None,
    kind: str | None,
    common: dict[str, object] | None = None,
) -> int:
    """Store a failure and back off; a failing feed is slowed down, never silently dropped."""

    def write() -> int:
        failures = rt.store.feed_state(feed.url).failures + 1
        next_poll = policy.next_poll_failed(
            now, rt.config.feed_interval(feed), failures, rt.config.watcher.max_backoff, retry_after
        )
        rt.store.record_poll(
            feed.url, status=FeedStatus.ERROR, failures=failures, last_error=error, error_kind=kind,
            next_poll=next_poll, **(common or {"last_polled": now}),
        )  # fmt: skip
        return failures

    return await rt.writer.run(write)


def _known(rt: Runtime, feed: FeedConfig, parsed: ParsedFeed) -> dict[str, StoredItem]:
    wanted = [i.guid for i in parsed.items] + [dedup.scoped_guid(i) for i in parsed.items if i.link]
    return rt.store.items_by_guid(feed.url, wanted)


async def _full_texts(
    rt: Runtime, feed: FeedConfig, parsed: ParsedFeed, now: datetime, first_poll: bool
) -> dict[str, fulltext.FullText]:
    """Article text for the items this poll will store as new (keyed by guid). Seen and updated items are
    never fetched again, and neither is a first poll's backlog, which never alerts."""
    known = _known(rt, feed, parsed)
    new: list[Item] = []
    for raw in parsed.items:  # the same decisions _store_items will take; keyed by the feed's own guid
        c = dedup.classify(raw, known.get(raw.guid), known.get(dedup.scoped_guid(raw)) if raw.link else None)
        if c.decision == Decision.NEW:
            new.append(raw)
    window = rt.config.watcher.first_poll_window

    def skip(item: Item) -> str | None:
        if policy.is_backlog(first_poll=first_poll, published=item.published, now=now, window=window):
            return "not fetched: backlog of the feed's first poll"
        return None

    from watcher import fulltext

    return await fulltext.fetch_full_texts(
        rt.fetcher, new, settings=rt.config.fetch_settings(feed), zone_url=feed.url,
        limit=rt.config.full_text_max(feed), skip=skip, executor=rt.parse_executor,
    )  # fmt: skip


def _store_items(
    rt: Runtime,
    feed: FeedConfig,
    parsed: ParsedFeed,
    now: datetime,
    first_poll: bool,
    pages: dict[str, fulltext.FullText] | None = None,  # None: the feed does not ask for full text
    prepared: _Prepared | None = None,  # classification and analyses done in the process pool
) -> tuple[int, int, int]:
    """Classify, cluster, match and store one feed's items. Runs inside the feed's transaction."""
    store, cfg = rt.store, rt.config
    index, topics = rt.topics_for(feed)
    if prepared is None:
        known = _known(rt, feed, parsed)
        classified = [
            dedup.classify(raw, known.get(raw.guid), known.get(dedup.scoped_guid(raw)) if raw.link else None)
            for raw in parsed.items
        ]
        analyses: dict[str, Analysis] = {}
    else:
        known, classified, analyses = prepared.known, prepared.classified, prepared.analyses
    # (the feed's own guid, the decision) of each item to store; new items as stored, with their fingerprint
    todo = [
        (raw.guid, c) for raw, c in zip(parsed.items, classified, strict=True) if c.decision != Decision.SEEN
    ]
    fresh = {c.item.guid: _new_item(c, pages, own_guid, analyses.get(c.item.guid))
             for own_guid, c in todo if c.decision == Decision.NEW}  # fmt: skip
    since = now - timedelta(seconds=cfg.watcher.dedup_window)
    stories = StoryFinder(store, feed.url, list(fresh.values()), settings=rt.neardup, since=since)
    new = updated = hits = 0
    for _, c in todo:
        item = c.item
        analysis = analyses.get(item.guid)
        if c.decision == Decision.UPDATED:
            old = known.get(item.guid)
            assert old is not None
            store.update_item(old, item, canonical_url=c.canonical_url, content_hash=c.content_hash, now=now)
            stories.item_updated()
            item_id, story_id = old.id, old.story_id
            if pages is not None:  # match the update with the article text stored when it was new
                item = replace(item, full_text=store.full_text(item_id))
            updated += 1
        else:
            n = fresh[item.guid]
            item = n.item
            story_id, reason, score = stories.assign(n, now)
            item_id = store.insert_item(
                feed_url=feed.url, item=item, canonical_url=c.canonical_url, content_hash=c.content_hash,
                story_id=story_id, story_reason=reason, story_score=score, now=now,
                folded_body=analysis[3] if analysis and pages is None else None,
            )  # fmt: skip
            stories.stored(n, item_id, story_id)
            new += 1
        if not topics:
            continue
        backlog = policy.is_backlog(
            first_poll=first_poll, published=item.published, now=now, window=cfg.watcher.first_poll_window
        )
        matches = analysis[2] if analysis else index.match(prepare(item.title, item.text))
        for name, m in matches.items():
            topic = topics[name]
            if not topic.wants_language(item.language):
                continue
            hit_id = store.add_hit(
                topic=name, story_id=story_id, item_id=item_id, terms=m.terms, snippet=m.snippet,
                backlog=backlog, now=now, channels=topic.config.channels,
            )  # fmt: skip
            if hit_id is not None:
                hits += 1
    stories.finish(now)
    return new, updated, hits


def _new_item(
    c: Classified, pages: dict[str, fulltext.FullText] | None, own_guid: str, analysis: Analysis | None
) -> NewItem:
    """A new item as it will be stored (with its article text when the feed asks for it) and its
    fingerprint: the worker's, or computed here when there is no pool or the text changed since."""
    item = c.item
    if pages is not None:
        from watcher.fulltext import with_full_text

        item = with_full_text(item, pages.get(own_guid))
    if analysis and analysis[0]:
        return NewItem(item, c.canonical_url, analysis[0], analysis[1])
    fp = fingerprint(item.title, item.text)
    return NewItem(item, c.canonical_url, fp, tuple(band_keys(fp)))
