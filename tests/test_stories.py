"""StoryFinder (watcher/stories.py) reads a feed's look-ups in bulk; it must assign every item exactly as the
per-item rule does when it queries the store after each insert (the reference below, which is what the
pipeline did before the finder)."""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher import dedup
from watcher.dedup import Reason
from watcher.fingerprint import NearDupSettings, band_keys, fingerprint
from watcher.models import Item
from watcher.parse import parse_feed
from watcher.store import Store, neardup
from watcher.stories import NewItem, StoryFinder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import farm as farmlib

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=14)
KINDS = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
Outcome = tuple[str, str, float | None]  # the story's first (feed, guid), the reason, the score


def _reference_assign(store: Store, feed_url: str, n: NewItem) -> tuple[int, str, float | None]:
    if n.item.id_source == "guid" and (same := store.item_by_guid_elsewhere(n.item.guid, feed_url)):
        store.touch_story(same.story_id, NOW)
        return same.story_id, Reason.SAME_ID, None
    if n.canonical_url and (same := store.item_by_canonical_url(n.canonical_url)):
        store.touch_story(same.story_id, NOW)
        return same.story_id, Reason.SAME_URL, None
    best = neardup.best_match(store.conn, n.fp, NearDupSettings(), since=SINCE, keys=n.keys)
    if best is not None:
        store.touch_story(best[1], NOW)
        return best[1], Reason.SIMILAR, round(best[2], 3)
    return (
        store.insert_story(feed_url=feed_url, guid=n.item.guid, title=n.item.title, now=NOW),
        Reason.FIRST,
        None,
    )


def _new(item: Item) -> NewItem:
    fp = fingerprint(item.title, item.text)
    return NewItem(item, dedup.item_canonical_url(item), fp, tuple(band_keys(fp)))


def _store_feed(
    store: Store, feed_url: str, items: list[NewItem], *, bulk: bool, update: Item | None
) -> None:
    finder = StoryFinder(store, feed_url, items, settings=NearDupSettings(), since=SINCE) if bulk else None
    for k, n in enumerate(items):
        if update is not None and k == len(items) // 2:  # a stored item of this feed changes its link
            old = store.items_by_guid(feed_url, [update.guid])[update.guid]
            canon = dedup.item_canonical_url(update)
            store.update_item(
                old, update, canonical_url=canon, content_hash=dedup.content_hash(update), now=NOW
            )
            if finder:
                finder.item_updated()
        story, reason, score = finder.assign(n, NOW) if finder else _reference_assign(store, feed_url, n)
        item_id = store.insert_item(
            feed_url=feed_url, item=n.item, canonical_url=n.canonical_url, content_hash=dedup.content_hash(n.item),
            story_id=story, story_reason=reason, story_score=score, now=NOW,
        )  # fmt: skip
        if finder:
            finder.stored(n, item_id, story)
        else:
            neardup.add(store.conn, item_id=item_id, story_id=story, fp=n.fp, seen_at=NOW, keys=n.keys)
    if finder:
        finder.finish(NOW)


def _outcomes(store: Store) -> dict[tuple[str, str], Outcome]:
    rows = store.conn.execute(
        "SELECT i.feed_url, i.guid, f.feed_url, f.guid, i.story_reason, i.story_score FROM items i "
        "JOIN stories s ON s.id = i.story_id JOIN items f ON f.id = s.first_item_id"
    )
    return {(r[0], r[1]): (f"{r[2]} {r[3]}", r[4], r[5]) for r in rows}


def _workload(tmp: Path) -> list[tuple[str, list[Item], Item | None]]:
    """Farm feeds (wire stories copied and edited across outlets) plus the hard cases: a copy with the same
    guid in another feed, the same article under tracking parameters, two items of one feed with one URL,
    a copy of an item stored earlier in the same feed, and stored items whose link changes mid-feed."""
    farm = farmlib.generate(tmp, 40, seed=5, base=NOW)
    rng = random.Random(7)
    feeds: list[tuple[str, list[Item], Item | None]] = []
    stored: list[Item] = []
    for spec in farm.feeds:
        url = f"http://farm/{spec.filename}"
        items = list(parse_feed(farm.path(spec).read_bytes(), url=url, headers={"content-type": KINDS[spec.kind]},
                                now=NOW).items)  # fmt: skip
        if stored:
            a, b = rng.sample(stored, 2)
            if a.guid not in {i.guid for i in items}:
                items.insert(rng.randrange(len(items)), replace(a, title=a.title + " (update)"))  # same guid
            items.insert(
                rng.randrange(len(items)), replace(b, guid=f"{url}#b", link=f"{b.link}?utm_source=x")
            )
        first = items[0]
        items.append(replace(first, guid=f"{url}#dup-url", title="Another headline for the same page"))
        items.append(replace(items[1], guid=f"{url}#copy", link=f"{url}/copy"))  # same text, own URL
        update = None
        if len(feeds) % 5 == 4:  # a stored item of the previous round now points where a new one points
            prev_url, prev_items, _ = feeds[-1]
            feeds.append((prev_url, [replace(prev_items[3], guid=f"{prev_url}#new", link=prev_items[2].link)],
                          replace(prev_items[2], link=f"{prev_url}/moved", summary="moved")))  # fmt: skip
        stored.extend(items)
        feeds.append((url, items, update))
    return feeds


def test_bulk_finder_assigns_stories_exactly_as_per_item_queries(tmp_path: Path) -> None:
    work = _workload(tmp_path / "farm")
    results = []
    for bulk in (False, True):
        with Store(tmp_path / f"{bulk}.db") as store:
            store.sync_feeds([(u, None) for u in {u for u, _, _ in work}], NOW)
            for feed_url, items, update in work:
                with store.transaction():
                    _store_feed(store, feed_url, [_new(i) for i in items], bulk=bulk, update=update)
            results.append(_outcomes(store))
    reference, bulk_result = results
    reasons = {r for _, r, _ in reference.values()}
    assert reasons == {"first", "same-id", "same-url", "similar"}  # every rule is exercised
    assert bulk_result == reference
