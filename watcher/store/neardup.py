"""Persistent LSH index of item fingerprints, for finding earlier copies of a story across outlets.

The index is two tables, so it survives restarts with nothing to rebuild:

* ``neardup_items``: one row per item with its story and fingerprint bytes;
* ``neardup_bands``: one row per (band slot, item), a WITHOUT ROWID table whose primary key is the band slot,
  so a lookup is one B-tree probe per band of the new item: cost grows with log(items) and with the
  number of items sharing a band, not with the number stored.

A band *slot* is the top 32 bits of a 64-bit band key (``slot``). The band table is the largest write of a
cold cycle (21 rows per item, each at a random place in the B-tree); 32-bit slots and no per-row time (the
window is checked on ``neardup_items``) made its rows 40 % smaller and the cold cycle's band writes about
twice as cheap at 2,000 feeds (schema v5). Two unrelated keys share a slot with probability 2**-32: with two
million stored bands, about one new item in a hundred meets an unrelated candidate this way, which
``is_near_duplicate`` then rejects.

Times are stored as integer UTC epoch seconds (naive datetimes are taken as UTC): compact, and compared
as integers. No function here commits: the item store wraps each feed's writes in one transaction, and
these statements join it (or autocommit one by one on a connection outside a transaction).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from watcher.fingerprint import Fingerprint, NearDupSettings, band_keys, is_near_duplicate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS neardup_items (
    item_id INTEGER PRIMARY KEY,
    story_id INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    fp BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS neardup_items_seen_at ON neardup_items(seen_at);
CREATE TABLE IF NOT EXISTS neardup_bands (
    band INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    PRIMARY KEY (band, item_id)
) WITHOUT ROWID;
"""


CANDIDATES = 50  # stored items compared with a new one at most: the weakest candidates beyond are dropped


def slot(key: int) -> int:
    """The stored form of a signed 64-bit band key: its top 32 bits, a signed 32-bit integer."""
    return key >> 32


def slots(keys: Sequence[int]) -> list[int]:
    """The distinct slots of these band keys, sorted."""
    return sorted({k >> 32 for k in keys})


def slim_bands(conn: sqlite3.Connection) -> None:
    """Migration v5: rewrite a band table of 64-bit keys with a per-row time into 32-bit slots."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(neardup_bands)")]
    if "seen_at" not in columns:
        return
    conn.execute("ALTER TABLE neardup_bands RENAME TO neardup_bands_v4")
    create_schema(conn)
    conn.execute(
        "INSERT OR IGNORE INTO neardup_bands (band, item_id) SELECT band >> 32, item_id FROM neardup_bands_v4"
    )
    conn.execute("DROP TABLE neardup_bands_v4")


def _epoch(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the index tables if missing; safe to call on every open or from a migration.

    Runs statement by statement (not ``executescript``, which would commit the caller's transaction).
    """
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _delete_bands(conn: sqlite3.Connection, item_id: int, fp_bytes: bytes) -> None:
    # Band keys are recomputed from the stored fingerprint, so deleting touches only this item's rows
    # through the primary key; no second index on item_id is needed.
    try:
        keys = slots(band_keys(Fingerprint.from_bytes(fp_bytes)))
    except ValueError:
        # a fingerprint of another format: its keys are unknown, so pay for one scan (rare, after upgrades)
        conn.execute("DELETE FROM neardup_bands WHERE item_id = ?", (item_id,))
        return
    if keys:
        conn.executemany(
            "DELETE FROM neardup_bands WHERE band = ? AND item_id = ?", [(k, item_id) for k in keys]
        )


def add(
    conn: sqlite3.Connection,
    *,
    item_id: int,
    story_id: int,
    fp: Fingerprint,
    seen_at: datetime,
    keys: Sequence[int] | None = None,
) -> None:
    """Index an item; adding an item id again replaces its fingerprint (an edited article). ``keys``: the
    fingerprint's band_keys when already computed (by a worker process: 21 digests off the writer's CPU)."""
    old = conn.execute("SELECT fp FROM neardup_items WHERE item_id = ?", (item_id,)).fetchone()
    if old is not None:
        _delete_bands(conn, item_id, bytes(old[0]))
    add_many(conn, [(item_id, story_id, fp, band_keys(fp) if keys is None else keys)], seen_at=seen_at)


def most_shared(shared: Mapping[int, int], limit: int = CANDIDATES) -> list[int]:
    """The ``limit`` item ids sharing the most band slots (the likeliest copies), the newest first among
    equals: the one ranking both the per-item look-up and a feed's bulk look-up (watcher/stories.py) use."""
    return [item_id for item_id, _ in sorted(shared.items(), key=lambda kv: (-kv[1], -kv[0]))[:limit]]


def candidates(
    conn: sqlite3.Connection,
    fp: Fingerprint,
    *,
    since: datetime,
    limit: int = CANDIDATES,
    keys: Sequence[int] | None = None,
) -> list[tuple[int, int, Fingerprint]]:
    """Stored items seen at or after ``since`` sharing a band key with ``fp``: (item_id, story_id, fp),
    ranked by ``most_shared``, so ``limit`` drops the weakest. Unreadable fingerprints (another format)
    are skipped after the ranking; they age out with prune()."""
    if limit <= 0:
        return []
    members = band_members(conn, band_keys(fp) if keys is None else keys, since=since)
    top = most_shared(Counter(i for ids in members.values() for i in ids), limit)
    found = fingerprints(conn, top)
    return [(item_id, *found[item_id]) for item_id in top if item_id in found]


def band_members(conn: sqlite3.Connection, keys: Sequence[int], *, since: datetime) -> dict[int, list[int]]:
    """For each slot of ``keys`` that stored items seen at or after ``since`` share: those items' ids. One
    probe per slot, in a few statements for a whole feed's new items instead of one query per item."""
    out: dict[int, list[int]] = {}
    unique = slots(keys)
    cutoff = _epoch(since)
    for start in range(0, len(unique), 5000):
        chunk = unique[start : start + 5000]
        for band, item_id in conn.execute(
            "SELECT b.band, b.item_id FROM neardup_bands AS b JOIN neardup_items AS n ON n.item_id = b.item_id "
            f"WHERE b.band IN ({','.join('?' * len(chunk))}) AND n.seen_at >= ?",
            (*chunk, cutoff),
        ):
            out.setdefault(int(band), []).append(int(item_id))
    return out


def fingerprints(conn: sqlite3.Connection, item_ids: Sequence[int]) -> dict[int, tuple[int, Fingerprint]]:
    """item id -> (story id, fingerprint) for these indexed items (unreadable fingerprints are left out)."""
    out: dict[int, tuple[int, Fingerprint]] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for item_id, story_id, blob in conn.execute(
            f"SELECT item_id, story_id, fp FROM neardup_items WHERE item_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            try:
                out[int(item_id)] = (int(story_id), Fingerprint.from_bytes(bytes(blob)))
            except ValueError:
                continue
    return out


def add_many(conn: sqlite3.Connection, entries: Sequence[tuple[int, int, Fingerprint, Sequence[int]]], *,
             seen_at: datetime) -> None:  # fmt: skip
    """Index items, (item_id, story_id, fp, band keys) each: two statements for a whole feed, band rows in
    key order so the B-tree inserts walk neighbouring pages. An item indexed before keeps its old band rows:
    ``add`` removes them first."""
    seen = _epoch(seen_at)
    conn.executemany(
        "INSERT OR REPLACE INTO neardup_items (item_id, story_id, seen_at, fp) VALUES (?, ?, ?, ?)",
        [(item_id, story_id, seen, fp.to_bytes()) for item_id, story_id, fp, _ in entries],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO neardup_bands (band, item_id) VALUES (?, ?)",
        sorted((s, item_id) for item_id, _, _, keys in entries for s in slots(keys)),
    )


def rank(
    fp: Fingerprint,
    candidates: Sequence[tuple[int, int, Fingerprint]],
    settings: NearDupSettings | None = None,
) -> tuple[int, int, float] | None:
    """The candidate with the strongest evidence of being a copy of ``fp``, as (item_id, story_id, score).

    A match on two full bodies outranks a headline-only match whatever the scores: the title rule scores
    1.0 for an identical headline, and letting that win would pull a full copy into a headline-only
    item's story and away from the full copies it agrees with (seen on the labelled set streamed in
    random order).
    """
    s = settings or NearDupSettings()
    best: tuple[int, int, float] | None = None
    best_rank: tuple[bool, float] = (False, -1.0)
    for item_id, story_id, other in candidates:
        dup, score = is_near_duplicate(fp, other, s)
        order = (not fp.short and not other.short, score)
        if dup and order > best_rank:
            best, best_rank = (item_id, story_id, score), order
    return best


def best_match(
    conn: sqlite3.Connection,
    fp: Fingerprint,
    settings: NearDupSettings | None = None,
    *,
    since: datetime,
    limit: int = 50,
    keys: Sequence[int] | None = None,
) -> tuple[int, int, float] | None:
    """The stored near-duplicate with the strongest evidence (see ``rank``), as (item_id, story_id, score)."""
    return rank(fp, candidates(conn, fp, since=since, limit=limit, keys=keys), settings)


def prune(conn: sqlite3.Connection, before: datetime, *, batch: int = 5000) -> int:
    """Forget items seen before ``before`` (callers pass now - settings.window); returns how many.

    Works in batches through the seen_at index, so the cost follows the rows removed, not the rows kept.
    """
    cutoff = _epoch(before)
    removed = 0
    while True:
        rows = conn.execute(
            "SELECT item_id, fp FROM neardup_items WHERE seen_at < ? ORDER BY seen_at LIMIT ?",
            (cutoff, batch),
        ).fetchall()
        if not rows:
            return removed
        for item_id, blob in rows:
            _delete_bands(conn, int(item_id), bytes(blob))
        conn.executemany("DELETE FROM neardup_items WHERE item_id = ?", [(int(r[0]),) for r in rows])
        removed += len(rows)


def forget(conn: sqlite3.Connection, item_ids: list[int]) -> int:
    """Drop these items from the index (pruned from the archive); returns how many were indexed."""
    removed = 0
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        rows = conn.execute(
            f"SELECT item_id, fp FROM neardup_items WHERE item_id IN ({','.join('?' * len(chunk))})", chunk
        ).fetchall()
        for item_id, blob in rows:
            _delete_bands(conn, int(item_id), bytes(blob))
        conn.executemany("DELETE FROM neardup_items WHERE item_id = ?", [(int(r[0]),) for r in rows])
        removed += len(rows)
    return removed


def count(conn: sqlite3.Connection, item_ids: list[int]) -> int:
    """How many of these items the index holds (what ``forget`` would remove)."""
    found = 0
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        found += conn.execute(
            f"SELECT count(*) FROM neardup_items WHERE item_id IN ({','.join('?' * len(chunk))})", chunk
        ).fetchone()[0]
    return int(found)
