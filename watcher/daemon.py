"""`watcher run`: APScheduler drives poll cycles and digests until SIGINT/SIGTERM.

Polling follows the persisted `next_poll` of each feed (miniflux's scheduler model): a ticker job picks the
feeds that are due and polls them as one cycle, so a restart resumes exactly where the database says, and a
thousand feeds do not need a thousand jobs. Digest jobs are registered per (topic, channel) schedule.

Shutdown is two-stage (uvicorn's habit): the first signal stops scheduling and lets in-flight polls finish
within `grace` seconds, then cancels them; a second signal cancels at once. Every feed's writes are one
transaction, so a cancelled poll leaves the database as if it had not started.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher import alerts, archive, metrics, policy
from watcher.config import Config, FeedConfig
from watcher.fetch import Fetcher
from watcher.models import FeedStatus, PollOutcome
from watcher.pipeline import Runtime, age_out, analysis_pool, poll_feed, sync_feeds
from watcher.store import Store, ts

if TYPE_CHECKING:
    from watcher.serve import HttpServer

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: Config, *, tick: float = 5.0, grace: float = 10.0) -> None:
        self.config = config
        self.tick = tick
        self.grace = grace
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[str] = set()
        self._digest_wanted = asyncio.Event()
        self._last_tick = float("-inf")
        self._last_prune = float("-inf")
        self._http: HttpServer | None = None

    def _signal(self, signame: str) -> None:
        if self.stop.is_set():
            log.warning("second %s: cancelling in-flight work now", signame)
            self.force.set()
            if self._http is not None:
                self._http.stop()  # the second stop drops open requests
            for task in self._tasks:
                task.cancel()
        else:
            log.info(
                "%s received: finishing in-flight polls (up to %.0fs), then exiting", signame, self.grace
            )
            self.stop.set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        if self.stop.is_set():
            return
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tick(self, rt: Runtime) -> None:
        """Start a cycle for the feeds that are due and not already in flight.

        A slow feed (bounded by its fetch deadline) never holds back the others: each feed is released as
        soon as its own poll ends, and immediate digests go out as soon as any feed brought new hits.
        """
        now = rt.clock()
        states = {s.url: s for s in rt.store.feed_states()}
        due = [
            f
            for f in rt.config.feeds
            if f.url not in self._inflight
            and (
                states.get(f.url) is None
                or (states[f.url].status != FeedStatus.GONE and policy.is_due(states[f.url].next_poll, now))
            )
        ]
        if time.monotonic() - self._last_tick > 60:  # liveness for `watcher health`, at most once a minute
            with rt.store.transaction():
                rt.store.set_state("last_tick", ts(now) or "")
            self._last_tick = time.monotonic()
        if due:
            self._inflight.update(f.url for f in due)
            self._spawn(self._cycle(rt, due))

    async def _poll_one(self, rt: Runtime, feed: FeedConfig) -> PollOutcome:
        try:
            outcome = await poll_feed(rt, feed)
        finally:
            self._inflight.discard(feed.url)
        if outcome.new_hits:
            self._digest_wanted.set()
        return outcome

    async def _cycle(self, rt: Runtime, due: list[FeedConfig]) -> None:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(self._poll_one(rt, f) for f in due))
        failed = sum(o.status == FeedStatus.ERROR for o in outcomes)
        unchanged = sum(o.status == FeedStatus.NOT_MODIFIED for o in outcomes)
        log.info(
            "cycle: %d feeds polled in %.1fs (%d unchanged, %d failed), %d new items, %d new hits",
            len(outcomes), time.monotonic() - started, unchanged, failed,
            sum(o.new_items for o in outcomes), sum(o.new_hits for o in outcomes),
        )  # fmt: skip
        with rt.store.transaction():
            rt.store.set_state("last_cycle", ts(rt.clock()) or "")
            rt.store.set_state("last_cycle_seconds", f"{time.monotonic() - started:.3f}")
            rt.store.bump_state(metrics.cycle_counters(outcomes))
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            pruned = age_out(rt)
            if pruned:
                log.info("dedup: %d index entries older than the dedup window aged out", pruned)
            try:  # [watcher] retention: a bounded slice each hour, so a first large prune never stalls polls
                kept = archive.apply_retention(rt.store, rt.config, rt.clock())
            except Exception:
                log.exception("retention: prune failed; retrying in an hour")
            else:
                if kept is not None and kept.counts.items:
                    log.info("retention: %s", kept.format())

    async def _immediate_digests(self, rt: Runtime) -> None:
        """Send `immediate` digests whenever a poll brought new hits, until shutdown."""
        while not self.stop.is_set():
            wanted = asyncio.ensure_future(self._digest_wanted.wait())
            stopping = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({wanted, stopping}, return_when=asyncio.FIRST_COMPLETED)
            wanted.cancel()
            stopping.cancel()
            if self.stop.is_set():
                return
            self._digest_wanted.clear()
            await self._digests(rt, only_schedule="immediate")

    async def _digests(
        self,
        rt: Runtime,
        *,
        only_schedule: str | None = None,
        topic: str | None = None,
        channel: str | None = None,
        heartbeat: bool = False,
    ) -> None:
        """Send due digests; a channel's failure is logged and retried later, never raised."""
        try:
            reports = await alerts.deliver(
                rt.config, rt.store, rt.clock(), topic=topic, channel=channel, only_schedule=only_schedule,
                heartbeat=heartbeat,
            )  # fmt: skip
        except Exception:
            log.exception("digest run failed")
            return
        for r in reports:
            if r.ok:
                log.info("digest: topic=%s channel=%s sent %d stories", r.topic, r.channel, r.stories)

    def _digest_jobs(self, rt: Runtime) -> list[tuple[Any, Callable[[], Awaitable[None]]]]:
        """One APScheduler trigger per scheduled (topic, channel); immediate pairs ride on the poll cycle.

        Scheduled runs also retry failed immediate deliveries of their pair, so a retry never waits on a
        poll cycle that has nothing due.
        """
        jobs: list[tuple[Any, Callable[[], Awaitable[None]]]] = []
        for t in rt.config.topics:
            for ch in t.config.channels:
                schedule, tz = alerts.channel_schedule(rt.config, t, ch)
                trigger = schedule.trigger(tz)
                heartbeat = trigger is not None
                if trigger is None:
                    trigger = IntervalTrigger(minutes=1, timezone=UTC)  # retries of failed immediate sends
                jobs.append(
                    (trigger, partial(self._digests, rt, topic=t.name, channel=ch, heartbeat=heartbeat))
                )
        return jobs

    def _listen(self) -> HttpServer | None:
        """The `[serve]` endpoints, bound now: a taken port stops the daemon before it polls anything."""
        if not self.config.serve.enabled:
            return None
        from watcher.serve import HttpServer, create_app, listen

        sock = listen(self.config.serve.host, self.config.serve.port)
        return HttpServer(create_app(self.config), sock, grace=self.grace)

    async def run(self) -> None:
        # Forked first, like `watcher poll`'s: before the database opens, any thread starts or the signal
        # handlers are installed (a worker must not inherit the loop's signal wake-up descriptor).
        pool = analysis_pool(len(self.config.feeds))
        try:
            await self._run(pool)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    async def _run(self, pool: Executor | None) -> None:
        self._http = self._listen()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signal, sig.name)
        store = Store(self.config.database_path)
        w = self.config.watcher
        try:
            async with Fetcher(
                max_connections=w.concurrency, per_host=w.per_host, user_agent=w.user_agent
            ) as f:
                rt = Runtime(config=self.config, store=store, fetcher=f, parse_executor=pool)
                sync_feeds(rt)
                scheduler = AsyncIOScheduler(timezone=UTC)

                async def tick() -> None:
                    self._tick(rt)

                scheduler.add_job(
                    tick,
                    IntervalTrigger(seconds=self.tick, timezone=UTC),
                    next_run_time=datetime.now(UTC),
                    id="poll-cycle", max_instances=1, coalesce=True, misfire_grace_time=None,
                )  # fmt: skip
                for i, (trigger, job) in enumerate(self._digest_jobs(rt)):

                    async def run_digest(job: Callable[[], Awaitable[None]] = job) -> None:
                        self._spawn(job())

                    scheduler.add_job(
                        run_digest, trigger, id=f"digest-{i}", coalesce=True,
                        max_instances=1, misfire_grace_time=3600,
                    )  # fmt: skip
                scheduler.start()
                if self._http is not None:
                    self._http.start()
                self._digest_wanted.set()  # deliveries left pending by a previous run go out now
                self._spawn(self._immediate_digests(rt))
                with store.transaction():
                    store.set_state("daemon_started", ts(datetime.now(UTC)) or "")
                log.info(
                    "watcher daemon started: %d feeds, %d topics, database %s",
                    len(self.config.feeds), len(self.config.topics), self.config.database_path,
                )  # fmt: skip
                await self.stop.wait()
                scheduler.pause()
                # A tick already handed to the loop runs its one step now: shutdown would cancel it, and
                # APScheduler logs a cancelled job as an error with a traceback.
                await asyncio.sleep(0)
                scheduler.shutdown(wait=False)
                if self._http is not None:
                    self._http.stop()  # winds down alongside the polls, within the same grace
                await self._drain()
        finally:
            if self._http is not None:
                await self._http.shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            store.close()
            log.info("watcher daemon stopped")

    async def _drain(self) -> None:
        if not self._tasks:
            return
        pending = set(self._tasks)
        done_waiting = asyncio.ensure_future(asyncio.wait(pending, timeout=self.grace))
        force_waiting = asyncio.ensure_future(self.force.wait())
        await asyncio.wait({done_waiting, force_waiting}, return_when=asyncio.FIRST_COMPLETED)
        force_waiting.cancel()
        for task in pending:
            if not task.done():
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
