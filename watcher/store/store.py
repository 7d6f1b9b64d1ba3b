"""Named reads and writes over the database; every SQL statement of Watcher lives in this package.

The store holds no rules: what is a duplicate, when a feed is polled next, what a hit is are decided by the
pure modules and the pipeline, which hand the store finished values.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.errors import StoreError
from watcher.models import FeedState, FeedStatus, HitView, Item, StoredItem
from watcher.store import fts
from watcher.store.db import BUSY_TIMEOUT_MS, connect, migrate, transaction
from watcher.store.schema import MIGRATIONS


def ts(dt: datetime | None) -> str | None:
    """One text form for every stored time, so that string order is time order."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_ts(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def story_key(feed_url: str, guid: str) -> str:
    """A story's stable public id: derived from its first item, so it never changes once given."""
    return "s-" + hashlib.sha1(f"{feed_url}\n{guid}".encode()).hexdigest()[:16]


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.db = connect(path)
        fts.register(self.db.conn)  # before migrating: the index's triggers call these functions
        migrate(self.db, list(MIGRATIONS))
        fts.ensure_current(self)

    @property
    def conn(self) -> Any:
        return self.db.conn

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with transaction(self.db):
            yield

    @contextmanager
    def savepoint(self) -> Iterator[Callable[[], None]]:
        """A nested unit inside the open transaction; the yielded function undoes its writes so far."""
        conn = self.db.conn

        def rollback() -> None:
            conn.execute("ROLLBACK TO unit")

        conn.execute("SAVEPOINT unit")
        try:
            yield rollback
        finally:
            conn.execute("RELEASE unit")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, list(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # --- feeds -----------------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[tuple[str, str | None]], now: datetime) -> None:
        """Make sure every configured feed has a row; keep configured names current."""
        with self.transaction():
            for url, name in feeds:
                self.db.execute(
                    "INSERT INTO feeds (url, name, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(url) DO UPDATE SET name = excluded.name",
                    [url, name, ts(now)],
                )

    def feed_states(self, urls: Sequence[str] | None = None, *, with_counts: bool = False) -> list[FeedState]:
        """Feed rows; `with_counts` adds each feed's item count, which costs a pass over its items, so only
        the CLI's `feeds` asks for it (the daemon reads the states on every tick)."""
        count = "(SELECT count(*) FROM items i WHERE i.feed_url = f.url)" if with_counts else "0"
        sql = f"SELECT f.*, {count} AS item_count FROM feeds f"
        params: list[Any] = []
        if urls is not None:
            sql += f" WHERE f.url IN ({','.join('?' * len(urls))})"
            params = list(urls)
        return [self._feed_state(r) for r in self._rows(sql + " ORDER BY f.url", params)]

    def feed_state(self, url: str) -> FeedState:
        states = self.feed_states([url])
        return states[0] if states else FeedState(url=url)

    @staticmethod
    def _feed_state(r: dict[str, Any]) -> FeedState:
        return FeedState(
            url=r["url"],
            name=r["name"],
            title=r["title"],
            status=FeedStatus(r["status"]),
            etag=r["etag"],
            last_modified=r["last_modified"],
            body_hash=r["body_hash"],
            last_polled=parse_ts(r["last_polled"]),
            last_success=parse_ts(r["last_success"]),
            last_new_item=parse_ts(r["last_new_item"]),
            last_unconditional=parse_ts(r["last_unconditional"]),
            next_poll=parse_ts(r["next_poll"]),
            failures=r["failures"],
            last_error=r["last_error"],
            items=r.get("item_count", 0),
        )

    def record_poll(self, url: str, **fields: Any) -> None:
        """Update a feed's row with the outcome of a poll. Datetime values are stored as timestamps."""
        if not fields:
            return
        cols = sorted(fields)
        values = [ts(v) if isinstance(v, datetime) else v for v in (fields[c] for c in cols)]
        values = [v.value if isinstance(v, FeedStatus) else v for v in values]
        self.db.execute(
            f"UPDATE feeds SET {', '.join(f'{c} = ?' for c in cols)} WHERE url = ?", [*values, url]
        )

    # --- items and stories -----------------------------------------------------------------------------

    def items_by_guid(self, feed_url: str, guids: Sequence[str]) -> dict[str, StoredItem]:
        out: dict[str, StoredItem] = {}
        for start in range(0, len(guids), 500):
            chunk = list(guids[start : start + 500])
            for r in self._rows(
                "SELECT id, feed_url, guid, link, canonical_url, title, content_hash, story_id FROM items "
                f"WHERE feed_url = ? AND guid IN ({','.join('?' * len(chunk))})",
                [feed_url, *chunk],
            ):
                out[r["guid"]] = StoredItem(**r)
        return out

    def item_by_canonical_url(self, canonical_url: str) -> StoredItem | None:
        rows = self._rows(
            "SELECT id, feed_url, guid, link, canonical_url, title, content_hash, story_id FROM items "
            "WHERE canonical_url = ? ORDER BY id LIMIT 1",
            [canonical_url],
        )
        return StoredItem(**rows[0]) if rows else None

    def item_by_guid_elsewhere(self, guid: str, feed_url: str) -> StoredItem | None:
        """The first item of another feed with this exact guid: wire services share ids across outlets."""
        rows = self._rows(
            "SELECT id, feed_url, guid, link, canonical_url, title, content_hash, story_id FROM items "
            "WHERE guid = ? AND feed_url != ? ORDER BY id LIMIT 1",
            [guid, feed_url],
        )
        return StoredItem(**rows[0]) if rows else None

    _ITEM_ROW = "id, feed_url, guid, link, canonical_url, title, content_hash, story_id"

    def first_items_by_canonical_url(self, urls: Sequence[str]) -> dict[str, StoredItem]:
        """For each canonical URL, the first stored item with it (``item_by_canonical_url`` in bulk)."""
        out: dict[str, StoredItem] = {}
        unique = sorted(set(urls))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            for r in self._rows(
                f"SELECT {self._ITEM_ROW} FROM items WHERE id IN (SELECT min(id) FROM items "
                f"WHERE canonical_url IN ({','.join('?' * len(chunk))}) GROUP BY canonical_url)",
                chunk,
            ):
                out[r["canonical_url"]] = StoredItem(**r)
        return out

    def first_items_by_guid_elsewhere(self, guids: Sequence[str], feed_url: str) -> dict[str, StoredItem]:
        """For each guid, the first item of another feed with it (``item_by_guid_elsewhere`` in bulk)."""
        out: dict[str, StoredItem] = {}
        unique = sorted(set(guids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            for r in self._rows(
                f"SELECT {self._ITEM_ROW} FROM items WHERE id IN (SELECT min(id) FROM items "
                f"WHERE guid IN ({','.join('?' * len(chunk))}) AND feed_url != ? GROUP BY guid)",
                [*chunk, feed_url],
            ):
                out[r["guid"]] = StoredItem(**r)
        return out

    def insert_story(self, *, feed_url: str, guid: str, title: str, now: datetime) -> int:
        cur = self.db.execute(
            "INSERT INTO stories (key, title, first_seen, last_seen) VALUES (?, ?, ?, ?)",
            [story_key(feed_url, guid), title, ts(now), ts(now)],
        )
        return int(cur.lastrowid or 0)

    def touch_story(self, story_id: int, now: datetime) -> None:
        self.db.execute("UPDATE stories SET last_seen = ? WHERE id = ?", [ts(now), story_id])

    def insert_item(
        self,
        *,
        feed_url: str,
        item: Item,
        canonical_url: str | None,
        content_hash: str,
        story_id: int,
        story_reason: str,
        story_score: float | None,
        now: datetime,
        folded_body: str | None = None,  # fold(item.text), when a worker computed it: the index's text
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO items (feed_url, guid, id_source, link, canonical_url, title, summary, content, "
            "author, language, published, first_seen, content_hash, story_id, story_reason, story_score, "
            "full_text, full_text_status, full_text_error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                feed_url, item.guid, item.id_source, item.link, canonical_url, item.title, item.summary,
                item.content, item.author, item.language, ts(item.published), ts(now), content_hash,
                story_id, story_reason, story_score, item.full_text or None, item.full_text_status,
                item.full_text_error,
            ],
        )  # fmt: skip
        item_id = int(cur.lastrowid or 0)
        if folded_body is None:
            folded_body = fts.fold_body(item.summary, item.content, item.full_text)
        fts.index_item(self.db.conn, item_id, item.title, folded_body)
        self.db.execute(
            "UPDATE stories SET first_item_id = coalesce(first_item_id, ?) WHERE id = ?", [item_id, story_id]
        )
        return item_id

    def update_item(
        self,
        old: StoredItem,
        item: Item,
        *,
        canonical_url: str | None,
        content_hash: str,
        now: datetime,
    ) -> None:
        """Store a changed item in place; the previous title is kept in item_history (the index follows by
        trigger: updates are rare, so folding there again costs nothing that matters)."""
        self.db.execute(
            "INSERT INTO item_history (item_id, changed_at, old_title, old_content_hash) VALUES (?, ?, ?, ?)",
            [old.id, ts(now), old.title, old.content_hash],
        )
        self.db.execute(
            "UPDATE items SET title = ?, summary = ?, content = ?, link = ?, canonical_url = ?, author = ?, "
            "language = ?, published = coalesce(?, published), updated_at = ?, content_hash = ? WHERE id = ?",
            [
                item.title, item.summary, item.content, item.link, canonical_url, item.author, item.language,
                ts(item.published), ts(now), content_hash, old.id,
            ],
        )  # fmt: skip
        self.touch_story(old.story_id, now)

    def full_text(self, item_id: int) -> str:
        """An item's stored article text ('' when none): an update of the item is matched with it too."""
        row = self.db.execute("SELECT full_text FROM items WHERE id = ?", [item_id]).fetchone()
        return str(row[0]) if row and row[0] else ""

    def item_history(self, item_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM item_history WHERE item_id = ? ORDER BY id", [item_id])

    def iter_items(self, feed_urls: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every stored item (for backtests), oldest first, streamed."""
        sql = "SELECT i.*, f.name AS feed_name FROM items i JOIN feeds f ON f.url = i.feed_url"
        params: list[Any] = []
        if feed_urls is not None:
            sql += f" WHERE i.feed_url IN ({','.join('?' * len(feed_urls))})"
            params = list(feed_urls)
        cur = self.db.execute(sql + " ORDER BY i.id", params)
        cols = [c[0] for c in cur.description]
        for row in cur:
            yield dict(zip(cols, row, strict=True))

    # --- hits ------------------------------------------------------------------------------------------

    def add_hit(
        self,
        *,
        topic: str,
        story_id: int,
        item_id: int,
        terms: Sequence[str],
        snippet: str,
        backlog: bool,
        now: datetime,
        channels: Sequence[str] = (),
    ) -> int | None:
        """A topic's hit on a story, with its pending deliveries; None when the story already had one."""
        cur = self.db.execute(
            "INSERT INTO hits (topic, story_id, item_id, terms, snippet, created_at, backlog) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (topic, story_id) DO NOTHING",
            [topic, story_id, item_id, json.dumps(list(terms)), snippet, ts(now), int(backlog)],
        )
        if cur.rowcount == 0:
            return None
        hit_id = int(cur.lastrowid or 0)
        if not backlog:
            for channel in channels:
                self.db.execute(
                    "INSERT INTO deliveries (hit_id, channel, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [hit_id, channel, ts(now)],
                )
        return hit_id

    def hits(
        self,
        *,
        topic: str | None = None,
        since: datetime | None = None,
        ids: Sequence[int] | None = None,
        newest: int | None = None,
    ) -> list[HitView]:
        """Hits oldest first; with `newest`, only the newest that many, newest first (the Atom feed's page,
        read through the (topic, created_at) index instead of the topic's whole history)."""
        where: list[str] = []
        params: list[object] = []
        if topic is not None:
            where.append("h.topic = ?")
            params.append(topic)
        if since is not None:
            where.append("h.created_at >= ?")
            params.append(ts(since))
        if ids is not None:
            where.append(f"h.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        rows = self._rows(
            "SELECT h.id, h.topic, h.terms, h.snippet, h.created_at, h.backlog, h.story_id, s.key AS story, "
            "i.id AS item_id, i.title, i.link, i.guid, i.published, i.first_seen, i.feed_url, "
            "i.full_text_status, i.full_text_error, "
            "coalesce(f.name, f.title, i.feed_url) AS feed "
            "FROM hits h JOIN stories s ON s.id = h.story_id JOIN items i ON i.id = h.item_id "
            "JOIN feeds f ON f.url = i.feed_url"
            + (" WHERE " + " AND ".join(where) if where else "")
            + (" ORDER BY h.created_at, h.id" if newest is None else " ORDER BY h.created_at DESC, h.id DESC")
            + ("" if newest is None else f" LIMIT {int(newest)}"),
            params,
        )
        copies = self._copies({r["story_id"] for r in rows})
        return [
            HitView(
                id=r["id"],
                topic=r["topic"],
                story=r["story"],
                title=r["title"],
                url=r["link"],
                feed=r["feed"],
                guid=r["guid"],
                published=parse_ts(r["published"]),
                first_seen=datetime.fromisoformat(r["first_seen"]),
                backlog=bool(r["backlog"]),
                terms=tuple(json.loads(r["terms"])),
                snippet=r["snippet"],
                also_seen=tuple(c for c in copies.get(r["story_id"], []) if c["item_id"] != r["item_id"]),
                full_text_status=r["full_text_status"],
                full_text_error=r["full_text_error"],
            )
            for r in rows
        ]

    def _copies(self, story_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        ids = sorted(story_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for r in self._rows(
                "SELECT i.id AS item_id, i.story_id, coalesce(f.name, f.title, i.feed_url) AS feed, "
                "i.link AS url, i.guid, i.published, i.first_seen, i.story_reason AS reason, "
                "i.story_score AS score FROM items i JOIN feeds f ON f.url = i.feed_url "
                f"WHERE i.story_id IN ({','.join('?' * len(chunk))}) ORDER BY i.id",
                chunk,
            ):
                out.setdefault(r.pop("story_id"), []).append(r)
        return out

    def feed_gaps(self, since: datetime, last: int = 20) -> dict[str, float]:
        """Each feed's usual gap between items (seconds), from its last `last` items first seen after `since`
        (their dates, first-seen if undated); the first_seen index bounds it, not the archive's size."""
        out: dict[str, float] = {}
        for r in self._rows(
            "SELECT feed_url, min(t) AS first, max(t) AS last, count(*) AS n FROM ("
            "  SELECT feed_url, coalesce(published, first_seen) AS t, row_number() OVER (PARTITION BY feed_url ORDER BY id DESC) AS rn "
            "  FROM items WHERE first_seen >= ?) WHERE rn <= ? GROUP BY feed_url",
            [ts(since), last],
        ):
            first, latest = parse_ts(r["first"]), parse_ts(r["last"])
            if r["n"] > 1 and first and latest and latest > first:
                out[r["feed_url"]] = (latest - first).total_seconds() / (r["n"] - 1)
        return out

    def recent_item_counts(self, since: datetime) -> dict[str, tuple[int, datetime | None]]:
        """Per feed: how many items are dated (first-seen if undated) after `since`, and the oldest such date;
        the first_seen index bounds the scan, as an item first seen before `since` is dated before it too."""
        return {
            r["feed_url"]: (r["n"], parse_ts(r["oldest"]))
            for r in self._rows(
                "SELECT feed_url, count(*) AS n, min(coalesce(published, first_seen)) AS oldest FROM items "
                "WHERE first_seen >= ? AND coalesce(published, first_seen) >= ? GROUP BY feed_url",
                [ts(since), ts(since)],
            )
        }

    # --- daemon state ----------------------------------------------------------------------------------

    def set_state(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO daemon_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM daemon_state WHERE key = ?", [key]).fetchone()
        return str(row[0]) if row else None

    def states(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.db.execute("SELECT key, value FROM daemon_state").fetchall()}

    def bump_state(self, counts: dict[str, int]) -> None:
        """Add to integer counters kept in daemon_state (the daemon's totals that /metrics reports)."""
        for key, n in counts.items():
            self.db.execute(
                "INSERT INTO daemon_state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                [key, n],
            )

    def probe_write(self, key: str, value: str, timeout: float) -> None:
        """Prove the database takes a write now: one row in its own transaction, waiting at most `timeout`
        seconds for another writer (a health check must answer before its caller gives up on it)."""
        self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        try:
            with self.transaction():
                self.set_state(key, value)
        except sqlite3.Error as e:
            raise StoreError(f"database {self.path} is not writable: {e}") from e
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def hit_counts(self) -> dict[str, int]:
        """Stored hits per topic (a pass over the hits index, which holds one row per topic and story)."""
        return {str(t): int(n) for t, n in self.db.execute("SELECT topic, count(*) FROM hits GROUP BY topic")}

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Deliveries per (status, channel), read from the (status, channel) index alone."""
        return {
            (str(s), str(c)): int(n)
            for s, c, n in self.db.execute(
                "SELECT status, channel, count(*) FROM deliveries GROUP BY status, channel"
            )
        }

    def integrity_check(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
