"""Pure dedup decisions: is an incoming item new, a changed version of a stored one, or already seen?

The store answers look-ups; this module only decides. Identity is the item id (guid), with one guard from
the field (skx/rss2email #111, feedbin #604): a feed that reuses one GUID for a different article (other link
*and* other title) must not hide the new article, so such an item gets an id scoped by its link.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum

from watcher.models import Item, StoredItem
from watcher.text import fold
from watcher.urls import canonical_url


class Decision(StrEnum):
    NEW = "new"
    UPDATED = "updated"  # same id, changed title or text: update in place, never a new alert
    SEEN = "seen"


class Reason(StrEnum):
    """Why an item joined a story (shown by `watcher hits --format json`)."""

    FIRST = "first"  # it started the story
    SAME_ID = "same-id"
    SAME_URL = "same-url"
    SIMILAR = "similar"


def content_hash(item: Item) -> str:
    """Hash of the title and body, whitespace-insensitive. It runs for every item of every changed feed, so
    it does not fold: a case-only edit counts as an update, and updates never alert."""
    basis = " ".join(item.title.split()) + "\n" + " ".join(item.text.split())
    return hashlib.sha1(basis.encode("utf-8", "surrogatepass")).hexdigest()


def item_canonical_url(item: Item) -> str | None:
    return canonical_url(item.link) if item.link else None


@dataclass(frozen=True, slots=True)
class Classified:
    decision: Decision
    item: Item  # possibly with a link-scoped guid
    content_hash: str
    canonical_url: str | None


def guid_reused(item: Item, existing: StoredItem, canon: str | None) -> bool:
    """The same guid now names another article: both the link and the title differ."""
    if item.id_source != "guid" or not canon or not existing.canonical_url:
        return False
    return canon != existing.canonical_url and fold(item.title) != fold(existing.title)


def item_keys(item: Item) -> tuple[str, str | None]:
    """(content hash, canonical URL): the costly part of classify, computable away from the store."""
    return content_hash(item), item_canonical_url(item)


def classify(
    item: Item,
    existing: StoredItem | None,
    scoped: StoredItem | None = None,
    keys: tuple[str, str | None] | None = None,
) -> Classified:
    """Decide what to do with `item` given the stored item with its guid (and with its link-scoped guid);
    `keys` are its item_keys when a worker process already computed them."""
    h, canon = keys or item_keys(item)
    if existing is not None and guid_reused(item, existing, canon):
        item = _scoped(item)
        existing = scoped
    if existing is None:
        return Classified(Decision.NEW, item, h, canon)
    if existing.content_hash == h:
        return Classified(Decision.SEEN, item, h, canon)
    return Classified(Decision.UPDATED, item, h, canon)


def scoped_guid(item: Item) -> str:
    return f"{item.guid}#{item.link}"


def _scoped(item: Item) -> Item:
    return replace(item, guid=scoped_guid(item))
