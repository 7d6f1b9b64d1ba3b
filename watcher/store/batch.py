"""Group commit: the writes of many feeds in one transaction, each feed still all-or-nothing.

A cold cycle commits thousands of feeds. One transaction per feed paid for the same B-tree pages again and
again: each feed's 40-odd items land at random places in the LSH band and FTS indexes, so a commit wrote
about as many dirty pages to the WAL as it had rows. Feeds that finish while the writer is busy now queue,
and the queue is written in one transaction with a SAVEPOINT per feed: a feed whose writes fail is rolled
back alone and its caller gets the exception; the others commit.

Jobs are plain functions run synchronously in the event loop's thread (the store's connection lives there),
so no transaction is ever open across an ``await``: nothing else in the process can interleave with a batch.
How long a job waits for companions follows what the last batch cost: a job arriving after the writer has
been idle for a tenth of that is written at once, alone (a daemon polling one feed at a time sees no delay);
while writes keep coming, a job waits up to that tenth (at most ``linger``) for others to join it, and a full
batch is written at once. A warm cycle's millisecond writes then wait nothing to speak of (a fixed 0.2 s wait
idled every batch of 304s that long). For a cold cycle at 2,000 feeds, where the writer is the bottleneck,
waiting the whole last cost took 51.7 s, a quarter 48.5 s, a tenth 45.6 s, a twentieth 46.1 s and a
hundredth 52.1 s (smaller batches rewrite the same index pages more often). A job may always wait 5 ms:
without that floor a warm cycle of 2,000 feeds committed 1,202 times and took 1.18 s; with it, 85 times and
1.06 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from watcher.store.db import transaction
from watcher.store.store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_JOBS = 128  # per transaction: bounds how long one batch holds the event loop and the write lock
LINGER = 0.2  # at most this many seconds a job waits for others while the writer is busy
SHARE = 10  # ...and at most the last batch's write time divided by this
FLOOR = 0.005  # ...but may always wait this long: a commit costs ~0.5 ms, a 304's own write far less


class GroupCommit:
    def __init__(self, store: Store, max_jobs: int = MAX_JOBS, linger: float = LINGER) -> None:
        self.store = store
        self.max_jobs = max_jobs
        self.linger = linger
        self._queue: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None  # the scheduled flush
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._last_flush = float("-inf")  # loop time the last batch ended
        self._last_cost = 0.0  # seconds the last batch took to write
        self.batches = 0
        self.jobs = 0

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` inside a write transaction shared with other queued jobs; its result or exception is
        this call's. A cancelled caller's job is not run if its batch has not started."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((job, future))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer_loop is not loop:  # a flush left on a loop that has ended never runs
            self._timer, self._timer_loop = None, loop
        full = len(self._queue) >= self.max_jobs
        if self._timer is not None and not full:
            return
        if self._timer is not None:
            self._timer.cancel()
        wait = min(self.linger, max(self._last_cost / SHARE, FLOOR))
        if full or loop.time() - self._last_flush > wait:
            # after the callbacks already ready: the feeds finishing in this loop turn join the batch
            self._timer = loop.call_soon(self._flush, loop)
        else:
            self._timer = loop.call_later(wait, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        batch, self._queue = self._queue[: self.max_jobs], self._queue[self.max_jobs :]
        started = loop.time()
        try:
            self._write([(job, fut) for job, fut in batch if not fut.cancelled()])
        finally:
            self._last_flush = loop.time()
            self._last_cost = self._last_flush - started
            if self._queue:
                self._schedule(loop)

    def _write(self, batch: list[tuple[Callable[[], Any], asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            with transaction(self.store.db):
                for job, future in batch:
                    results.append((future, *self._one(job)))
        except BaseException as e:  # the COMMIT itself failed (disk full, I/O error): nothing was stored
            log.error("group commit of %d jobs failed: %s", len(batch), e)
            for _, future in batch:
                if not future.done():
                    future.set_exception(e if isinstance(e, Exception) else RuntimeError(str(e)))
            if not isinstance(e, Exception):
                raise
            return
        self.batches += 1
        self.jobs += len(batch)
        for future, ok, value in results:
            if future.done():  # cancelled while the batch ran: its writes stand, like any committed poll
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _one(self, job: Callable[[], Any]) -> tuple[bool, Any]:
        with self.store.savepoint() as rollback:
            try:
                return True, job()
            except Exception as e:
                rollback()
                return False, e
