"""Which story a feed's new items join: the same id elsewhere, the same canonical URL, a near-duplicate, or a
story of their own (precision first, in that order).

The rules are per item, but the look-ups are made once per feed: a cold cycle stores tens of thousands of
items, and three queries per item (and a fingerprint index write per item) were a third of the writer's
time. The finder reads what the store already holds about *all* of the feed's new items in a few statements,
then keeps an in-memory overlay of the items it stores itself, so each item still sees every earlier item of
its own feed exactly as if it had queried the store after each insert:

* same id: only other feeds count, so the snapshot is exact;
* same canonical URL: the snapshot's item has a lower id than anything this feed adds, so it wins, else the
  first of this feed's own items with that URL; once the feed updates a stored item (its canonical URL may
  change), the finder asks the store per item instead;
* near-duplicates: band members from the snapshot plus the overlay, ranked by ``neardup.most_shared`` as
  the per-item ``neardup.candidates`` ranks them; the overlay's fingerprints are indexed with one write at
  the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.dedup import Reason
from watcher.fingerprint import Fingerprint, NearDupSettings
from watcher.models import Item
from watcher.store import Store, neardup


@dataclass(frozen=True, slots=True)
class NewItem:
    item: Item
    canonical_url: str | None
    fp: Fingerprint
    keys: tuple[int, ...]


class StoryFinder:
    def __init__(
        self,
        store: Store,
        feed_url: str,
        new: Sequence[NewItem],
        *,
        settings: NearDupSettings,
        since: datetime,
    ) -> None:
        self.store = store
        self.settings = settings
        self._feed_url = feed_url
        self._by_guid = store.first_items_by_guid_elsewhere(
            [n.item.guid for n in new if n.item.id_source == "guid"], feed_url
        )
        self._urls_exact = True
        self._by_url = {u: s.story_id for u, s in store.first_items_by_canonical_url(
            [n.canonical_url for n in new if n.canonical_url]
        ).items()}  # fmt: skip
        self._members = neardup.band_members(store.conn, [k for n in new for k in n.keys], since=since)
        self._fps = neardup.fingerprints(store.conn, [i for ids in self._members.values() for i in ids])
        self._own_bands: dict[int, list[int]] = {}
        self._pending: list[tuple[int, int, Fingerprint, Sequence[int]]] = []

    def assign(self, n: NewItem, now: datetime) -> tuple[int, str, float | None]:
        """(story id, reason, score) for a new item; a story it joins is marked as seen now."""
        if n.item.id_source == "guid" and (same := self._by_guid.get(n.item.guid)) is not None:
            return self._join(same.story_id, now), Reason.SAME_ID, None
        if n.canonical_url and (story := self._story_by_url(n.canonical_url)) is not None:
            return self._join(story, now), Reason.SAME_URL, None
        best = neardup.rank(n.fp, self._candidates(n.keys), self.settings)
        if best is not None:
            _, story, score = best
            return self._join(story, now), Reason.SIMILAR, round(score, 3)
        story = self.store.insert_story(
            feed_url=self._feed_url, guid=n.item.guid, title=n.item.title, now=now
        )
        return story, Reason.FIRST, None

    def stored(self, n: NewItem, item_id: int, story_id: int) -> None:
        """Record a new item the store now holds: later items of the feed must find it."""
        if n.canonical_url:
            self._by_url.setdefault(n.canonical_url, story_id)
        for key in neardup.slots(n.keys):
            self._own_bands.setdefault(key, []).append(item_id)
        self._fps[item_id] = (story_id, n.fp)
        self._pending.append((item_id, story_id, n.fp, n.keys))

    def item_updated(self) -> None:
        """A stored item was updated in place: its canonical URL may have changed, so the snapshot of URLs is
        no longer exact, and this feed's remaining items ask the store."""
        self._urls_exact = False

    def finish(self, now: datetime) -> None:
        """Index the fingerprints of the items stored through this finder (once per feed)."""
        if self._pending:
            neardup.add_many(self.store.conn, self._pending, seen_at=now)
            self._pending = []

    def _story_by_url(self, canonical_url: str) -> int | None:
        if self._urls_exact:
            return self._by_url.get(canonical_url)
        same = self.store.item_by_canonical_url(canonical_url)
        return same.story_id if same is not None else None

    def _join(self, story_id: int, now: datetime) -> int:
        self.store.touch_story(story_id, now)
        return story_id

    def _candidates(self, keys: Sequence[int]) -> list[tuple[int, int, Fingerprint]]:
        shared: Counter[int] = Counter()
        for key in neardup.slots(keys):
            shared.update(self._members.get(key, ()))
            shared.update(self._own_bands.get(key, ()))
        top = neardup.most_shared(shared)
        return [(item_id, *self._fps[item_id]) for item_id in top if item_id in self._fps]
