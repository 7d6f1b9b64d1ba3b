"""Group commit (watcher/store/batch.py): jobs queued together share one transaction, each stays atomic."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.store import Store
from watcher.store.batch import GroupCommit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "w.db")
    s.sync_feeds([(f"http://x/{i}", None) for i in range(6)], NOW)
    return s


def _titles(path: Path) -> dict[str, str | None]:
    """What another connection sees: only committed writes."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT url, title FROM feeds").fetchall())


def _set_title(store: Store, i: int, fail: bool = False) -> int:
    store.record_poll(f"http://x/{i}", title=f"t{i}")
    if fail:
        raise ValueError(f"job {i} failed after writing")
    return i


async def test_a_failing_job_is_rolled_back_alone_and_its_caller_gets_the_error(store: Store) -> None:
    writer = GroupCommit(store)
    jobs = [writer.run(lambda i=i: _set_title(store, i, fail=i == 2)) for i in range(4)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError)
    assert writer.batches == 1 and writer.jobs == 4  # submitted in one loop turn: one transaction
    titles = _titles(store.path)
    assert [titles[f"http://x/{i}"] for i in range(4)] == ["t0", "t1", None, "t3"]


async def test_an_idle_writer_commits_at_once_and_a_busy_one_groups(store: Store) -> None:
    writer = GroupCommit(store, max_jobs=3)
    loop = asyncio.get_running_loop()
    ran: list[int] = []

    def costly(i: int) -> int:
        # a write that takes 50 ms of loop time: the next jobs may wait a tenth of that for companions
        until = loop.time() + 0.05
        while loop.time() < until:
            pass
        ran.append(i)
        return _set_title(store, i)

    assert await writer.run(lambda: costly(0)) == 0  # idle: written at once, no wait
    assert _titles(store.path)["http://x/0"] == "t0"
    first = asyncio.ensure_future(writer.run(lambda: costly(1)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert ran == [0]  # busy: the job waits for companions...
    rest = [writer.run(lambda i=i: costly(i)) for i in (2, 3)]
    assert await asyncio.gather(first, *rest) == [1, 2, 3]  # ...and the full batch is written at once
    assert writer.batches == 2


async def test_cheap_writes_make_jobs_wait_no_longer_than_they_cost(store: Store) -> None:
    """A warm cycle's writes take a millisecond: a fixed wait for companions would idle the cycle."""
    writer = GroupCommit(store, linger=3600)
    async with asyncio.timeout(30):  # a bound, not a measurement: waiting for companions would take an hour
        for i in range(4):  # one at a time, each after the previous one
            assert await writer.run(lambda i=i: _set_title(store, i)) == i
    assert writer.batches == 4


async def test_more_jobs_than_a_batch_holds_are_all_written(store: Store) -> None:
    writer = GroupCommit(store, max_jobs=2)
    assert await asyncio.gather(*(writer.run(lambda i=i: _set_title(store, i)) for i in range(6))) == list(
        range(6)
    )
    assert writer.batches == 3
    assert all(v == f"t{i}" for i, v in enumerate(_titles(store.path)[f"http://x/{i}"] for i in range(6)))


async def test_a_job_cancelled_before_its_batch_is_not_run(store: Store) -> None:
    writer = GroupCommit(store)
    ran: list[int] = []

    def job(i: int) -> int:
        ran.append(i)
        return _set_title(store, i)

    first = asyncio.ensure_future(writer.run(lambda: job(0)))
    second = asyncio.ensure_future(writer.run(lambda: job(1)))
    await asyncio.sleep(0)  # both queued; the flush is scheduled behind them
    first.cancel()
    assert await second == 1
    assert ran == [1]
    assert _titles(store.path)["http://x/0"] is None


async def test_a_failed_commit_fails_every_job_of_the_batch(store: Store, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "w.db", timeout=0)
    store.conn.execute("PRAGMA busy_timeout = 0")
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock: BEGIN IMMEDIATE cannot start
    try:
        writer = GroupCommit(store)
        results = await asyncio.gather(
            *(writer.run(lambda i=i: _set_title(store, i)) for i in range(2)), return_exceptions=True
        )
    finally:
        other.rollback()
        other.close()
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert writer.batches == 0
