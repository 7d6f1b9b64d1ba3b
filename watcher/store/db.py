"""Opening the database and migrating its schema.

WAL mode lets the CLI read while the daemon writes; a long busy timeout makes a second writer wait instead of
failing with "database is locked". Writers take the lock up front (BEGIN IMMEDIATE), so a read-then-write
transaction can never deadlock against another writer. Migrations are ordered functions, each applied in one
transaction together with the bump of `schema_version`, and run on every open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from watcher.errors import StoreError

BUSY_TIMEOUT_MS = 30_000


def connect(path: Path | str) -> sqlite_utils.Database:
    p = Path(path)
    try:
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # A poll writes items, five indexes, the FTS index and the LSH bands; SQLite's 2 MB default cache
        # evicts and re-reads their pages within one transaction. 16 MB (allocated only as pages are read):
        # at 2,000 feeds the cold cycle's writer took 41 s of CPU with 8 MB, 39 s with 16 and 36 s with 24,
        # and 16 keeps the cycle's peak memory under 150 MB. Checkpoints (the only fsyncs under
        # synchronous=NORMAL) every ~16 MB of WAL instead of every 4 MB.
        conn.execute("PRAGMA cache_size = -16000")
        conn.execute("PRAGMA wal_autocheckpoint = 4000")
        conn.execute("PRAGMA foreign_keys = ON")
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"cannot open database {p}: {e}") from e
    return sqlite_utils.Database(conn)


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """One write transaction; nested calls join the outer one."""
    conn = db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


Migration = Callable[[sqlite_utils.Database], None]


def schema_version(db: sqlite_utils.Database) -> int:
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite_utils.Database, migrations: list[Migration]) -> int:
    """Apply the pending migrations in order; returns the resulting version."""
    if schema_version(db) == len(migrations):
        # Up to date: a CLI opening the database to read takes no write lock, so it never queues behind
        # the daemon's write transactions (WAL readers do not wait for writers).
        return len(migrations)
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
    current = schema_version(db)
    if current > len(migrations):
        raise StoreError(
            f"database schema version {current} is newer than this Watcher ({len(migrations)}): upgrade Watcher"
        )
    for version, step in enumerate(migrations[current:], start=current + 1):
        with transaction(db):
            step(db)
            db.execute("UPDATE schema_version SET version = ?", [version])
    return len(migrations)
