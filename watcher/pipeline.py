"""One poll of one feed, and of many: the only orchestrator, shared by `watcher poll` and the daemon.

    state = store.feed_state(url)
    result = fetch(request built from state)        # never raises for the feed's faults
    parsed = parse(result.body)                     # skipped on 304 or when the body hash is unchanged
    pages = full text of the new items' articles    # feeds with full_text = true (fulltext.py)
    for item in parsed.items:
        decision = dedup.classify(item, stored)     # new / updated / seen
        story = same id | same canonical URL | near-duplicate | a new story
        hits = topic_index.match(document(item))
    store everything of this feed in ONE transaction, with the feed's new state

A feed's failure becomes a stored error and a PollOutcome; it never stops the other feeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from watcher import dedup, fulltext, policy
from watcher.config import Config, FeedConfig, Topic
from watcher.dedup import Decision, Reason
from watcher.errors import ParseError
from watcher.fetch import Fetcher
from watcher.fingerprint import Fingerprint, NearDupSettings, fingerprint
from watcher.match import TopicIndex, prepare
from watcher.models import (
    FeedStatus,
    FetchRequest,
    FetchResult,
    FetchStatus,
    Item,
    ParsedFeed,
    PollOutcome,
    StoredItem,
)
from watcher.parse import parse_feed
from watcher.store import Store, neardup

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
    parse_executor: Executor | None = None  # None: parse in the default thread pool

    def __post_init__(self) -> None:
        self._indexes: dict[tuple[str, ...], tuple[TopicIndex, dict[str, Topic]]] = {}
        self.neardup = NearDupSettings()

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


def sync_feeds(rt: Runtime) -> None:
    rt.store.sync_feeds(((f.url, f.name) for f in rt.config.feeds), rt.clock())


def age_out(rt: Runtime) -> int:
    """Drop near-duplicate index entries older than the dedup window: their stories are closed."""
    before = rt.clock() - timedelta(seconds=rt.config.watcher.dedup_window)
    with rt.store.transaction():
        return neardup.prune(rt.store.conn, before)


async def poll_all(rt: Runtime, feeds: Sequence[FeedConfig] | None = None) -> list[PollOutcome]:
    """Poll feeds concurrently (the fetcher bounds concurrency globally and per host)."""
    targets = list(rt.config.feeds if feeds is None else feeds)
    return list(await asyncio.gather(*(poll_feed(rt, f) for f in targets)))


async def poll_feed(rt: Runtime, feed: FeedConfig) -> PollOutcome:
    started = time.monotonic()
    try:
        return await _poll_feed(rt, feed, started)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug must cost one feed, not the cycle
        log.exception("feed=%s internal error while polling", feed.url)
        _record_failure(rt, feed, rt.clock(), f"internal error: {type(e).__name__}: {e}", None, "internal")
        return PollOutcome(url=feed.url, status=FeedStatus.ERROR, error=str(e), elapsed=_since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


async def _poll_feed(rt: Runtime, feed: FeedConfig, started: float) -> PollOutcome:
    store, cfg = rt.store, rt.config
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
        with store.transaction():
            store.record_poll(feed.url, status=FeedStatus.GONE, last_error=msg, error_kind="gone",
                              next_poll=None, **common)  # fmt: skip
        log.warning("feed=%s gone (HTTP 410), no longer polled", feed.url)
        return PollOutcome(url=feed.url, status=FeedStatus.GONE, error=msg, elapsed=_since(started))
    if result.status == FetchStatus.ERROR:
        error = result.error or "fetch failed"
        failures = _record_failure(rt, feed, now, error, result.retry_after, result.error_kind, common)
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
        with store.transaction():
            store.record_poll(feed.url, status=FeedStatus.NOT_MODIFIED, **ok_state)
        return PollOutcome(url=feed.url, status=FeedStatus.NOT_MODIFIED, elapsed=_since(started))

    try:
        parsed = await _parse(rt, feed, result, now)
    except ParseError as e:
        failures = _record_failure(rt, feed, now, e.detail, None, "parse", common)
        log.warning("feed=%s parse failed (%d in a row): %s", feed.url, failures, e.detail)
        return PollOutcome(url=feed.url, status=FeedStatus.ERROR, error=e.detail, elapsed=_since(started))

    first_poll = state.last_success is None
    # Article pages are fetched before the feed's transaction opens: no write lock is held over the network.
    pages = await _full_texts(rt, feed, parsed, now, first_poll) if cfg.full_text(feed) else None
    with store.transaction():
        new, updated, hits = _store_items(rt, feed, parsed, now, first_poll, pages)
        if new:
            ok_state["last_new_item"] = now
        store.record_poll(
            feed.url, status=FeedStatus.OK, body_hash=body_hash, title=parsed.title, site_url=parsed.link,
            warning=parsed.warning, **ok_state,
        )  # fmt: skip
    return PollOutcome(
        url=feed.url, status=FeedStatus.OK, new_items=new, updated_items=updated, new_hits=hits, parsed=True,
        elapsed=_since(started),
    )  # fmt: skip


async def _parse(rt: Runtime, feed: FeedConfig, result: FetchResult, now: datetime) -> ParsedFeed:
    assert result.body is not None
    job = partial(
        parse_feed,
        result.body,
        url=result.final_url or feed.url,
        headers=dict(result.headers),
        now=now,
        max_items=rt.config.max_items(feed),
    )
    return await asyncio.get_running_loop().run_in_executor(rt.parse_executor, job)


def _record_failure(
    rt: Runtime,
    feed: FeedConfig,
    now: datetime,
    error: str,
    retry_after: float | None,
    kind: str | None,
    common: dict[str, object] | None = None,
) -> int:
    """Store a failure and back off; a failing feed is slowed down, never silently dropped."""
    with rt.store.transaction():
        failures = rt.store.feed_state(feed.url).failures + 1
        next_poll = policy.next_poll_failed(
            now, rt.config.feed_interval(feed), failures, rt.config.watcher.max_backoff, retry_after
        )
        rt.store.record_poll(
            feed.url, status=FeedStatus.ERROR, failures=failures, last_error=error, error_kind=kind,
            next_poll=next_poll, **(common or {"last_polled": now}),
        )  # fmt: skip
    return failures


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
) -> tuple[int, int, int]:
    """Classify, cluster, match and store one feed's items. Runs inside the feed's transaction."""
    store, cfg = rt.store, rt.config
    index, topics = rt.topics_for(feed)
    known = _known(rt, feed, parsed)
    since = now - timedelta(seconds=cfg.watcher.dedup_window)
    new = updated = hits = 0
    for raw in parsed.items:
        c = dedup.classify(raw, known.get(raw.guid), known.get(dedup.scoped_guid(raw)) if raw.link else None)
        item = c.item
        if c.decision == Decision.SEEN:
            continue
        if c.decision == Decision.UPDATED:
            old = known.get(item.guid)
            assert old is not None
            store.update_item(old, item, canonical_url=c.canonical_url, content_hash=c.content_hash, now=now)
            item_id, story_id = old.id, old.story_id
            if pages is not None:  # match the update with the article text stored when it was new
                item = replace(item, full_text=store.full_text(item_id))
            updated += 1
        else:
            if pages is not None:
                item = fulltext.with_full_text(item, pages.get(raw.guid))
            fp = fingerprint(item.title, item.text)
            story_id, reason, score = _assign_story(rt, feed, item, c.canonical_url, fp, since, now)
            item_id = store.insert_item(
                feed_url=feed.url, item=item, canonical_url=c.canonical_url, content_hash=c.content_hash,
                story_id=story_id, story_reason=reason, story_score=score, now=now,
            )  # fmt: skip
            neardup.add(store.conn, item_id=item_id, story_id=story_id, fp=fp, seen_at=now)
            new += 1
        known[item.guid] = StoredItem(
            id=item_id, feed_url=feed.url, guid=item.guid, link=item.link, canonical_url=c.canonical_url,
            title=item.title, content_hash=c.content_hash, story_id=story_id,
        )  # fmt: skip
        if not topics:
            continue
        doc = prepare(item.title, item.text)
        backlog = policy.is_backlog(
            first_poll=first_poll, published=item.published, now=now, window=cfg.watcher.first_poll_window
        )
        for name, m in index.match(doc).items():
            topic = topics[name]
            if not topic.wants_language(item.language):
                continue
            hit_id = store.add_hit(
                topic=name, story_id=story_id, item_id=item_id, terms=m.terms, snippet=m.snippet,
                backlog=backlog, now=now, channels=topic.config.channels,
            )  # fmt: skip
            if hit_id is not None:
                hits += 1
    return new, updated, hits


def _assign_story(
    rt: Runtime,
    feed: FeedConfig,
    item: Item,
    canon: str | None,
    fp: Fingerprint,
    since: datetime,
    now: datetime,
) -> tuple[int, str, float | None]:
    """Attach a new item to an existing story when it is a copy, else start a story (precision first)."""
    store = rt.store
    if item.id_source == "guid":
        same = store.item_by_guid_elsewhere(item.guid, feed.url)
        if same is not None:
            store.touch_story(same.story_id, now)
            return same.story_id, Reason.SAME_ID, None
    if canon:
        same = store.item_by_canonical_url(canon)
        if same is not None:
            store.touch_story(same.story_id, now)
            return same.story_id, Reason.SAME_URL, None
    best = neardup.best_match(store.conn, fp, rt.neardup, since=since)
    if best is not None:
        _, story_id, score = best
        store.touch_story(story_id, now)
        return story_id, Reason.SIMILAR, round(score, 3)
    return (
        store.insert_story(feed_url=feed.url, guid=item.guid, title=item.title, now=now),
        Reason.FIRST,
        None,
    )
