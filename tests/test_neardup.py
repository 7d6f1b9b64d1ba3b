from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_fingerprint import FPS, ITEMS

from watcher.fingerprint import Fingerprint, NearDupSettings, band_keys, fingerprint
from watcher.store import neardup

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=365)


def open_db(path: Path) -> sqlite3.Connection:
    # autocommit mode with explicit transactions, as the item store opens it
    conn = sqlite3.connect(path, isolation_level=None)
    neardup.create_schema(conn)
    return conn


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_db(tmp_path / "watcher.db")
    yield conn
    conn.close()


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_create_schema_is_idempotent_and_keeps_the_callers_transaction(db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    neardup.create_schema(db)
    assert db.in_transaction  # executescript would have committed here
    db.execute("COMMIT")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"neardup_items", "neardup_bands"} <= tables


def test_a_copy_finds_the_stored_story(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0)
    neardup.add(db, item_id=2, story_id=20, fp=FPS["hq22-2-a"], seen_at=T0)
    found = neardup.candidates(db, FPS["hq22-b"], since=LONG_AGO)
    assert found[0] == (1, 10, FPS["hq22-a"])
    match = neardup.best_match(db, FPS["hq22-b"], NearDupSettings(), since=LONG_AGO)
    assert match is not None
    assert match[:2] == (1, 10)
    assert match[2] > 0.6


def test_a_look_alike_finds_nothing(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["belex-mon-a"], seen_at=T0)
    assert neardup.candidates(db, FPS["belex-tue-a"], since=LONG_AGO)  # close enough to be checked...
    assert neardup.best_match(db, FPS["belex-tue-a"], since=LONG_AGO) is None  # ...and rejected


def test_since_limits_the_window(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0 - timedelta(days=20))
    assert neardup.best_match(db, FPS["hq22-b"], since=T0 - timedelta(days=14)) is None
    assert neardup.best_match(db, FPS["hq22-b"], since=T0 - timedelta(days=30)) is not None


def test_naive_datetimes_are_utc(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0.replace(tzinfo=None))
    assert neardup.candidates(db, FPS["hq22-b"], since=T0)
    assert not neardup.candidates(db, FPS["hq22-b"], since=T0 + timedelta(seconds=1))


def test_limit_keeps_the_items_sharing_most_bands(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=1, fp=FPS["belex-tue-a"], seen_at=T0)
    neardup.add(db, item_id=2, story_id=2, fp=FPS["belex-mon-a"], seen_at=T0)
    neardup.add(db, item_id=3, story_id=3, fp=FPS["belex-wed-a"], seen_at=T0)
    top = neardup.candidates(db, FPS["belex-mon-b"], since=LONG_AGO, limit=1)
    assert [c[0] for c in top] == [2]
    assert neardup.candidates(db, FPS["belex-mon-b"], since=LONG_AGO, limit=0) == []


def test_adding_an_item_again_replaces_its_index_rows(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0)
    neardup.add(db, item_id=1, story_id=10, fp=FPS["jar-a"], seen_at=T0)
    assert count(db, "neardup_items") == 1
    assert count(db, "neardup_bands") == len(set(band_keys(FPS["jar-a"])))
    assert neardup.best_match(db, FPS["hq22-b"], since=LONG_AGO) is None
    assert neardup.best_match(db, FPS["jar-b"], since=LONG_AGO) is not None


def test_empty_fingerprints_are_stored_but_never_indexed(db: sqlite3.Connection) -> None:
    empty = fingerprint("", "")
    neardup.add(db, item_id=1, story_id=1, fp=empty, seen_at=T0)
    assert count(db, "neardup_bands") == 0
    assert neardup.candidates(db, empty, since=LONG_AGO) == []


def test_prune_ages_out_old_items_and_their_bands(db: sqlite3.Connection) -> None:
    for i, x in enumerate(ITEMS[:20]):
        neardup.add(db, item_id=i, story_id=i, fp=FPS[x.id], seen_at=T0 - timedelta(days=i))
    kept_bands = sum(len(set(band_keys(FPS[x.id]))) for x in ITEMS[:15])
    assert neardup.prune(db, T0 - timedelta(days=14, hours=12), batch=2) == 5
    assert count(db, "neardup_items") == 15
    assert count(db, "neardup_bands") == kept_bands
    assert neardup.prune(db, T0 - timedelta(days=14, hours=12)) == 0


def test_prune_copes_with_fingerprints_of_another_format(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=1, fp=FPS["hq22-a"], seen_at=T0 - timedelta(days=30))
    db.execute("UPDATE neardup_items SET fp = ?", (b"\x09" + FPS["hq22-a"].to_bytes()[1:],))
    assert neardup.candidates(db, FPS["hq22-a"], since=LONG_AGO) == []  # unreadable rows are skipped
    assert neardup.prune(db, T0) == 1
    assert count(db, "neardup_bands") == 0


def test_nothing_is_committed_behind_the_callers_back(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0)
    assert db.in_transaction
    db.execute("ROLLBACK")
    assert count(db, "neardup_items") == 0
    assert count(db, "neardup_bands") == 0


def test_the_index_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "watcher.db"
    first = open_db(path)
    first.execute("BEGIN IMMEDIATE")
    neardup.add(first, item_id=7, story_id=70, fp=FPS["fk3-a"], seen_at=T0)
    first.execute("COMMIT")
    first.close()
    second = open_db(path)  # a new process would do just this: no rebuild step exists
    match = neardup.best_match(second, FPS["fk3-b"], since=LONG_AGO)
    second.close()
    assert match is not None
    assert match[:2] == (7, 70)


def test_lookups_probe_the_band_index(db: sqlite3.Connection) -> None:
    neardup.add(db, item_id=1, story_id=10, fp=FPS["hq22-a"], seen_at=T0)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    neardup.candidates(db, FPS["hq22-b"], since=LONG_AGO)
    db.set_trace_callback(None)
    (query,) = [s for s in statements if "neardup_bands" in s]
    plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + query))
    # the bands (aliased b) through their primary key, each hit's item (n) by its id: nothing scanned
    assert "SEARCH b USING PRIMARY KEY (band=?)" in plan
    assert "SEARCH n USING INTEGER PRIMARY KEY (rowid=?)" in plan
    assert "SCAN" not in plan


def test_v5_migration_keeps_every_band_as_its_slot(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "v4.db")
    conn.execute(
        "CREATE TABLE neardup_bands (band INTEGER NOT NULL, item_id INTEGER NOT NULL, seen_at INTEGER NOT NULL, "
        "PRIMARY KEY (band, item_id)) WITHOUT ROWID"
    )
    keys = band_keys(FPS["hq22-a"])
    conn.executemany("INSERT INTO neardup_bands VALUES (?, ?, ?)", [(k, 7, 0) for k in keys])
    neardup.slim_bands(conn)
    assert [r[1] for r in conn.execute("PRAGMA table_info(neardup_bands)")] == ["band", "item_id"]
    assert conn.execute("SELECT band, item_id FROM neardup_bands ORDER BY band").fetchall() == [
        (s, 7) for s in neardup.slots(keys)
    ]
    assert all(-(2**31) <= s < 2**31 for s in neardup.slots(keys))
    neardup.slim_bands(conn)  # a second run finds nothing to do
    assert conn.execute("SELECT count(*) FROM neardup_bands").fetchone()[0] == len(neardup.slots(keys))


# Seeds 1, 2, 6, 9 and 11 once split a group: a lead-only copy bridged two full copies (see best_match).
@pytest.mark.parametrize("seed", [1, 2, 6, 9, 11, 12])
def test_streaming_the_labelled_set_rebuilds_its_groups(db: sqlite3.Connection, seed: int) -> None:
    """The daemon's use: each item either joins the best earlier story or opens a new one."""
    order = list(ITEMS)
    random.Random(seed).shuffle(order)
    story_of: dict[str, int] = {}
    db.execute("BEGIN IMMEDIATE")
    for item_id, x in enumerate(order, start=1):
        fp: Fingerprint = FPS[x.id]
        match = neardup.best_match(db, fp, since=T0 - timedelta(days=14))
        story_of[x.id] = match[1] if match else item_id
        neardup.add(db, item_id=item_id, story_id=story_of[x.id], fp=fp, seen_at=T0)
    db.execute("COMMIT")
    stories_by_group: dict[str, set[int]] = {}
    for x in ITEMS:
        if not x.stretch:
            stories_by_group.setdefault(x.group, set()).add(story_of[x.id])
    assert all(len(s) == 1 for s in stories_by_group.values()), stories_by_group
    groups_by_story: dict[int, set[str]] = {}
    for x in ITEMS:
        groups_by_story.setdefault(story_of[x.id], set()).add(x.group)
    assert all(len(g) == 1 for g in groups_by_story.values()), groups_by_story
