"""The archive's SQL: the full-text index of items, search candidates, and pruning old items.

The index is an FTS5 table, ``items_fts(title, text)``, whose rowid is ``items.id`` and whose columns hold the
*folded* title and body (watcher/text.py ``fold``): lower-case ASCII, so FTS5's unicode61 tokenizer yields
exactly the matcher's tokens and watcher/ftsquery.py can narrow a topic query without losing matches. The
body is ``models.body_text`` of the item, the very text the pipeline matches (summary, content, full text).

A new item is indexed by the store as it inserts it (``index_item``), with the folded body the analysis
workers already computed for matching: folding is a large share of a cold cycle's writer time, and doing it
once is the point. Everything after that is kept in sync by triggers on ``items`` (update in place, full text
filled in later, pruning, a hand-run DELETE). The update trigger calls two SQL functions that ``register``
installs on each connection the store opens; a tool that opens the file without them can still read
everything and delete items, but cannot change an item's text, which is the safe failure (the index never
goes stale silently). Rows such a tool inserts are not indexed; ``check`` reports them. The index stores its own copy of the folded
text (an ordinary FTS5 table, not external-content): the folded text exists nowhere else, and owning it lets
FTS5 delete by rowid and check itself (``integrity-check``) without recomputing anything.

``tokenize = 'unicode61 remove_diacritics 2'`` matters only for people typing into Datasette: our own
queries are folded before they get here, but a Datasette search for ``Vučić`` then still finds ``vucic``.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.models import body_text
from watcher.store import neardup
from watcher.text import fold

if TYPE_CHECKING:
    from watcher.store.store import Store

log = logging.getLogger(__name__)

FTS_TABLE = "items_fts"
_ITEM_COLUMNS = (
    "i.id, i.feed_url, i.guid, i.link, i.title, i.summary, i.content, i.full_text, i.full_text_status, "
    "i.language, i.published, i.first_seen, i.story_id, s.key AS story, "
    "coalesce(f.name, f.title, i.feed_url) AS feed_name"
)
_ITEM_JOINS = "JOIN feeds f ON f.url = i.feed_url JOIN stories s ON s.id = i.story_id"


def _fold_title(title: str | None) -> str:
    return fold(title or "")


def fold_body(summary: str | None, content: str | None, full_text: str | None) -> str:
    return fold(body_text(summary or "", content or "", full_text or ""))


def index_item(conn: sqlite3.Connection, item_id: int, title: str, folded_body: str) -> None:
    """Index a newly inserted item; ``folded_body`` is ``fold_body`` of its stored summary, content, full text."""
    conn.execute(
        f"INSERT INTO {FTS_TABLE} (rowid, title, text) VALUES (?, ?, ?)", (item_id, fold(title), folded_body)
    )


def register(conn: sqlite3.Connection) -> None:
    """Install the SQL functions the index triggers call; the store does this on every connection it opens."""
    conn.create_function("watcher_fold_title", 1, _fold_title, deterministic=True)
    conn.create_function("watcher_fold_body", 3, fold_body, deterministic=True)
    # Builds with SQLITE_TRUSTED_SCHEMA=0 refuse application functions inside triggers unless the schema is
    # trusted; this file's schema is our own, written by our migrations.
    conn.execute("PRAGMA trusted_schema = ON")


_VALUES = "watcher_fold_title(new.title), watcher_fold_body(new.summary, new.content, new.full_text)"
_SCHEMA = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, text, tokenize = 'unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER items_fts_update AFTER UPDATE OF title, summary, content, full_text ON items BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.id;
        INSERT INTO {FTS_TABLE} (rowid, title, text) VALUES (new.id, {_VALUES});
    END""",
    f"""CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.id;
    END""",
    # pruning asks "does this story have hits?" and "which hits point at these items?" per item
    "CREATE INDEX IF NOT EXISTS hits_story ON hits(story_id)",
    "CREATE INDEX IF NOT EXISTS hits_item ON hits(item_id)",
)


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the index and its triggers and fill it from the items already stored (migration v4).

    Statement by statement, not ``executescript``, which would commit the migration's transaction.
    """
    register(conn)
    for statement in _SCHEMA:
        conn.execute(statement)
    rebuild(conn)


def rebuild(conn: sqlite3.Connection) -> int:
    """Index every stored item afresh (after a change to folding, or to repair); returns how many."""
    conn.execute(f"DELETE FROM {FTS_TABLE}")
    cur = conn.execute(
        f"INSERT INTO {FTS_TABLE} (rowid, title, text) SELECT id, watcher_fold_title(title), "
        "watcher_fold_body(summary, content, full_text) FROM items"
    )
    conn.execute(
        "INSERT INTO daemon_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (_FOLD_KEY, fold_signature()),
    )
    return int(cur.rowcount)


# Characters whose folding a change to watcher/text.py would most likely touch: Serbian Cyrillic and Latin,
# other diacritics, ligatures, compatibility forms, other scripts, punctuation that may become separators.
_FOLD_PROBE = (
    "Vučić VUČIĆ Вучић Ђилас đĐ ЏЉЊџљњ ћчжшјхц ß ẞ æ Æ œ ﬁ ﬂ ½ ① Ⅻ ＦＫ－３ Ελλάδα Κίνα 北京 München "
    "ñ ç İ ı ǅ ø å – — ‐ ’ ‘ « » „ “ № ™ © ° µ"
)
_FOLD_KEY = "fts_fold_signature"


def fold_signature() -> str:
    """A fingerprint of how text folds today; the index was built with the one stored beside it."""
    return hashlib.sha256(fold(_FOLD_PROBE).encode()).hexdigest()[:16]


def ensure_current(store: Store) -> int | None:
    """Rebuild the index when folding changed since it was built (an upgrade), so an index of text folded the
    old way never hides matches; returns the items re-indexed, or None when the index was current."""
    signature = fold_signature()
    if store.get_state(_FOLD_KEY) == signature:
        return None
    with store.transaction():
        if store.get_state(_FOLD_KEY) == signature:  # another process rebuilt it meanwhile
            return None
        count = rebuild(store.conn)
    log.warning("search index rebuilt for %d items: text folding changed since it was built", count)
    return count


def check(store: Store) -> list[str]:
    """Problems with the index, in words; empty when FTS5's own check passes and every item is indexed."""
    problems: list[str] = []
    try:
        store.conn.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as e:
        problems.append(f"FTS5 integrity check failed: {e}")
    missing = store.conn.execute(
        f"SELECT count(*) FROM items WHERE id NOT IN (SELECT rowid FROM {FTS_TABLE})"
    ).fetchone()[0]
    extra = store.conn.execute(
        f"SELECT count(*) FROM {FTS_TABLE} WHERE rowid NOT IN (SELECT id FROM items)"
    ).fetchone()[0]
    if missing:
        problems.append(f"{missing} items are not in the index")
    if extra:
        problems.append(f"{extra} index rows belong to no item")
    return problems


def indexed_text(store: Store, item_id: int) -> tuple[str, str] | None:
    """The folded (title, text) the index holds for an item, or None."""
    row = store.conn.execute(f"SELECT title, text FROM {FTS_TABLE} WHERE rowid = ?", (item_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


# --- search ----------------------------------------------------------------------------------------------


def search_rows(
    store: Store,
    match: str | None,
    *,
    since: str | None = None,
    feed_refs: Sequence[str] = (),
    feed_urls: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stored items, newest first, narrowed by an FTS5 expression (None: every item) and the filters.

    ``since`` is a stored timestamp compared with the item's date (first-seen when undated); ``feed_refs``
    are names, titles or URLs of feeds; ``feed_urls`` (a topic's feeds) restricts to those URLs. An
    expression FTS5 refuses (a query nested deeper than its parser allows) costs speed, not results: the
    search falls back to reading every item, since the caller's matcher decides anyway.
    """
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("coalesce(i.published, i.first_seen) >= ?")
        params.append(since)
    if feed_refs:
        marks = ",".join("?" * len(feed_refs))
        where.append(f"(f.url IN ({marks}) OR f.name IN ({marks}) OR f.title IN ({marks}))")
        params.extend([*feed_refs, *feed_refs, *feed_refs])
    if feed_urls is not None:
        where.append(f"i.feed_url IN ({','.join('?' * len(feed_urls))})")
        params.extend(feed_urls)
    order = " ORDER BY coalesce(i.published, i.first_seen) DESC, i.id DESC"
    plain = f"SELECT {_ITEM_COLUMNS} FROM items i {_ITEM_JOINS}"
    if match is not None:
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM {FTS_TABLE} JOIN items i ON i.id = {FTS_TABLE}.rowid {_ITEM_JOINS} "
            f"WHERE {FTS_TABLE} MATCH ?" + "".join(f" AND {w}" for w in where) + order
        )
        try:
            cur = store.conn.execute(sql, [match, *params])
        except sqlite3.OperationalError as e:
            log.warning("search: FTS5 refused %r (%s); reading every item instead", match, e)
        else:
            yield from _stream(cur)
            return
    sql = plain + (" WHERE " + " AND ".join(where) if where else "") + order
    yield from _stream(store.conn.execute(sql, params))


def _stream(cur: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    cols = [c[0] for c in cur.description]
    for row in cur:
        yield dict(zip(cols, row, strict=True))


def known_feed(store: Store, ref: str) -> bool:
    """Whether a stored feed has this URL, configured name or title."""
    row = store.conn.execute(
        "SELECT 1 FROM feeds WHERE url = ? OR name = ? OR title = ? LIMIT 1", (ref, ref, ref)
    ).fetchone()
    return row is not None


# --- pruning ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """Rows removed (or, in a dry run, that would be removed)."""

    items: int = 0
    stories: int = 0
    hits: int = 0
    deliveries: int = 0
    history: int = 0
    neardup: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            self.items + other.items, self.stories + other.stories, self.hits + other.hits,
            self.deliveries + other.deliveries, self.history + other.history, self.neardup + other.neardup,
        )  # fmt: skip


def _prunable(include_hits: bool) -> str:
    """SQL condition on item ``i`` (parameter ``:cutoff``): first seen before the cutoff and not protected.

    An item of a story with hits is protected, so a hit keeps its item and the outlets that carried the
    story; with ``include_hits`` such a story goes too, but only once all of its items are old, so a story
    still growing keeps its hits (and a late copy never re-alerts it).
    """
    no_hits = "NOT EXISTS (SELECT 1 FROM hits h WHERE h.story_id = i.story_id)"
    if not include_hits:
        return f"i.first_seen < :cutoff AND {no_hits}"
    all_old = "NOT EXISTS (SELECT 1 FROM items j WHERE j.story_id = i.story_id AND j.first_seen >= :cutoff)"
    return f"i.first_seen < :cutoff AND ({no_hits} OR {all_old})"


def _select(conn: sqlite3.Connection, cutoff: str, include_hits: bool, limit: int) -> list[int]:
    """Fill temp.prune_ids with the oldest prunable items (temp tables never lock the database file)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.prune_ids")
    conn.execute(
        f"INSERT INTO temp.prune_ids SELECT i.id FROM items i WHERE {_prunable(include_hits)} "
        "ORDER BY i.first_seen LIMIT :limit",
        {"cutoff": cutoff, "limit": limit},
    )
    return [int(r[0]) for r in conn.execute("SELECT id FROM temp.prune_ids ORDER BY id")]


def _count(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


_IDS = "(SELECT id FROM temp.prune_ids)"
_HIT_IDS = f"(SELECT id FROM hits WHERE item_id IN {_IDS})"


def prune_plan(store: Store, cutoff: str, *, include_hits: bool) -> PruneCounts:
    """What ``prune_batch`` would remove, all batches together, without changing anything (a dry run).

    Runs in one read transaction, so the counts are one consistent snapshot while the daemon writes on.
    """
    conn = store.conn
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        ids = _select(conn, cutoff, include_hits, -1)
        stories = _count(
            conn,
            f"SELECT count(*) FROM stories s WHERE s.id IN (SELECT story_id FROM items WHERE id IN {_IDS}) "
            f"AND NOT EXISTS (SELECT 1 FROM items j WHERE j.story_id = s.id AND j.id NOT IN {_IDS})",
        )
        return PruneCounts(
            items=len(ids),
            stories=stories,
            hits=_count(conn, f"SELECT count(*) FROM hits WHERE item_id IN {_IDS}"),
            deliveries=_count(conn, f"SELECT count(*) FROM deliveries WHERE hit_id IN {_HIT_IDS}"),
            history=_count(conn, f"SELECT count(*) FROM item_history WHERE item_id IN {_IDS}"),
            neardup=neardup.count(conn, ids),
        )
    finally:
        conn.execute("DELETE FROM temp.prune_ids")
        if own:
            conn.execute("COMMIT")


def prune_batch(store: Store, cutoff: str, *, include_hits: bool, limit: int) -> PruneCounts:
    """Remove up to ``limit`` of the oldest prunable items with everything that hangs off them.

    One transaction per batch, so the daemon's writers wait for a batch, never for a whole prune. The
    index rows go with the items (trigger); stories left without items go too, and a story that keeps some
    items gets a new first item when its first one went.
    """
    conn = store.conn
    with store.transaction():
        ids = _select(conn, cutoff, include_hits, limit)
        if not ids:
            return PruneCounts()
        deliveries = _count(conn, f"SELECT count(*) FROM deliveries WHERE hit_id IN {_HIT_IDS}")
        conn.execute(f"DELETE FROM deliveries WHERE hit_id IN {_HIT_IDS}")
        hits = conn.execute(f"DELETE FROM hits WHERE item_id IN {_IDS}").rowcount
        history = conn.execute(f"DELETE FROM item_history WHERE item_id IN {_IDS}").rowcount
        forgotten = neardup.forget(conn, ids)
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_stories (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.prune_stories")
        conn.execute(f"INSERT INTO temp.prune_stories SELECT DISTINCT story_id FROM items WHERE id IN {_IDS}")
        conn.execute(f"DELETE FROM items WHERE id IN {_IDS}")
        stories = conn.execute(
            "DELETE FROM stories WHERE id IN (SELECT id FROM temp.prune_stories) "
            "AND NOT EXISTS (SELECT 1 FROM items WHERE story_id = stories.id) "
            "AND NOT EXISTS (SELECT 1 FROM hits WHERE story_id = stories.id)"
        ).rowcount
        conn.execute(
            "UPDATE stories SET first_item_id = (SELECT min(id) FROM items WHERE story_id = stories.id) "
            f"WHERE id IN (SELECT id FROM temp.prune_stories) AND first_item_id IN {_IDS}"
        )
        conn.execute("DELETE FROM temp.prune_ids")
        conn.execute("DELETE FROM temp.prune_stories")
    return PruneCounts(len(ids), stories, hits, deliveries, history, forgotten)


def compact(store: Store) -> None:
    """Merge the index's segments and give freed pages back to the file system (after a large prune)."""
    store.conn.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}) VALUES ('optimize')")
    store.conn.execute("VACUUM")
