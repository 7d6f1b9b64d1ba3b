"""The schema, as ordered migrations. Append new steps; never edit a released one."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _v1_core(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE feeds (
            url TEXT PRIMARY KEY,
            name TEXT,
            title TEXT,
            site_url TEXT,
            status TEXT NOT NULL DEFAULT 'never',
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,
            http_status INTEGER,
            last_polled TEXT,
            last_success TEXT,
            last_new_item TEXT,
            last_unconditional TEXT,
            next_poll TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            error_kind TEXT,
            permanent_url TEXT,
            warning TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            first_item_id INTEGER,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL
        );
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            feed_url TEXT NOT NULL REFERENCES feeds(url) ON UPDATE CASCADE,
            guid TEXT NOT NULL,
            id_source TEXT NOT NULL,
            link TEXT,
            canonical_url TEXT,
            title TEXT NOT NULL,
            summary TEXT NOT NULL,
            content TEXT NOT NULL,
            author TEXT,
            language TEXT,
            published TEXT,
            first_seen TEXT NOT NULL,
            updated_at TEXT,
            content_hash TEXT NOT NULL,
            story_id INTEGER NOT NULL REFERENCES stories(id),
            story_reason TEXT NOT NULL,
            story_score REAL,
            UNIQUE (feed_url, guid)
        );
        CREATE INDEX items_canonical_url ON items(canonical_url);
        CREATE INDEX items_guid ON items(guid);
        CREATE INDEX items_story ON items(story_id);
        CREATE INDEX items_first_seen ON items(first_seen);
        CREATE TABLE item_history (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            changed_at TEXT NOT NULL,
            old_title TEXT NOT NULL,
            old_content_hash TEXT NOT NULL
        );
        CREATE INDEX item_history_item ON item_history(item_id);
        CREATE TABLE hits (
            id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL,
            story_id INTEGER NOT NULL REFERENCES stories(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            terms TEXT NOT NULL,
            snippet TEXT NOT NULL,
            created_at TEXT NOT NULL,
            backlog INTEGER NOT NULL DEFAULT 0,
            UNIQUE (topic, story_id)
        );
        CREATE INDEX hits_topic_created ON hits(topic, created_at);
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            hit_id INTEGER NOT NULL REFERENCES hits(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt TEXT,
            sent_at TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (hit_id, channel)
        );
        CREATE INDEX deliveries_status ON deliveries(status, channel);
        CREATE TABLE daemon_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """
    )


def _v2_neardup(db: sqlite_utils.Database) -> None:
    from watcher.store import neardup

    neardup.create_schema(db.conn)


def _v3_full_text(db: sqlite_utils.Database) -> None:
    """An item's extracted article text, kept apart from the feed's own summary and content.

    `full_text_status` is NULL when the feed does not ask for full text, 'ok' when the article page was
    fetched and extracted, 'fallback' when that failed and the feed's summary stands in (the reason is in
    `full_text_error`).
    """
    db.executescript(
        """
        ALTER TABLE items ADD COLUMN full_text TEXT;
        ALTER TABLE items ADD COLUMN full_text_status TEXT;
        ALTER TABLE items ADD COLUMN full_text_error TEXT;
        """
    )


def _v4_fts(db: sqlite_utils.Database) -> None:
    """The archive's full-text index over folded titles and bodies, filled from the items already stored."""
    from watcher.store import fts

    fts.create_schema(db.conn)


def _v5_slim_bands(db: sqlite_utils.Database) -> None:
    """LSH band rows as 32-bit slots without a time of their own (watcher/store/neardup.py)."""
    from watcher.store import neardup

    neardup.slim_bands(db.conn)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_core, _v2_neardup, _v3_full_text, _v4_fts, _v5_slim_bands,
]  # fmt: skip
