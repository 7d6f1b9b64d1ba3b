"""Prometheus metrics, read from the store at scrape time.

Nothing is counted in process memory: the daemon adds each cycle's totals to counters kept in daemon_state,
in the transaction that ends the cycle, so `watcher serve` in a process of its own reports the same numbers
as the daemon's embedded server, and a restart does not reset them. Everything else (feeds by status, hits,
deliveries) is a gauge over tables that stay small next to the items: no scrape ever counts the archive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from watcher.config import Config
from watcher.models import FeedState, FeedStatus, PollOutcome
from watcher.store import Store, parse_ts

# daemon_state key -> (metric family, help); the exposition adds `_total` to each family's name
COUNTERS: dict[str, tuple[str, str]] = {
    "polls_total": ("watcher_feed_polls", "Feed polls the daemon finished, whatever their outcome."),
    "poll_failures_total": ("watcher_feed_poll_failures", "Feed polls that ended in an error."),
    "items_stored_total": ("watcher_items_stored", "New items stored by the daemon."),
    "hits_total": ("watcher_hits", "New hits (one per topic and story) found by the daemon."),
}
# daemon_state key -> (metric family, help), each a time stored as ISO 8601 and reported in Unix seconds
TIMES: dict[str, tuple[str, str]] = {
    "last_cycle": ("watcher_last_cycle_timestamp_seconds", "When the last poll cycle finished."),
    "last_tick": ("watcher_last_tick_timestamp_seconds", "When the daemon last checked for due feeds."),
    "daemon_started": ("watcher_daemon_started_timestamp_seconds", "When the daemon last started."),
}
DELIVERY_STATUSES = ("pending", "sent", "failed")


def cycle_counters(outcomes: Sequence[PollOutcome]) -> dict[str, int]:
    """What one finished cycle adds to the daemon's counters (see `Store.bump_state`)."""
    return {
        "polls_total": len(outcomes),
        "poll_failures_total": sum(o.status == FeedStatus.ERROR for o in outcomes),
        "items_stored_total": sum(o.new_items for o in outcomes),
        "hits_total": sum(o.new_hits for o in outcomes),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The store's figures at one instant, labelled for the configured feeds, topics and channels."""

    feeds: Mapping[str, int]  # status -> configured feeds
    hits: Mapping[str, int]  # topic -> stored hits
    deliveries: Mapping[tuple[str, str], int]  # (status, channel) -> deliveries
    state: Mapping[str, str]  # daemon_state


def snapshot(store: Store, config: Config) -> Snapshot:
    """Read everything a scrape reports. Feeds removed from the configuration keep their rows in the
    store but are not counted; configured ones never polled count as `never`."""
    states = {s.url: s for s in store.feed_states()}
    feeds = dict.fromkeys((s.value for s in FeedStatus), 0)
    for f in config.feeds:
        feeds[states.get(f.url, FeedState(url=f.url)).status.value] += 1
    stored = store.hit_counts()
    hits = {t.name: stored.get(t.name, 0) for t in config.topics}
    deliveries = {(s, c): 0 for s in DELIVERY_STATUSES for c in config.file.channels}
    deliveries.update(store.delivery_counts())
    return Snapshot(feeds=feeds, hits=hits, deliveries=deliveries, state=store.states())


class SnapshotCollector(Collector):
    """Turns a Snapshot into metric families; absent counters are 0 so that rate() works from the start."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        for key, (name, doc) in COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=_number(snap.state.get(key)))
        feeds = GaugeMetricFamily("watcher_feeds", "Configured feeds by the status of their last poll.",
                                  labels=["status"])  # fmt: skip
        for status, n in sorted(snap.feeds.items()):
            feeds.add_metric([status], n)
        yield feeds
        hits = GaugeMetricFamily("watcher_topic_hits", "Stored hits per topic, backlog included.",
                                 labels=["topic"])  # fmt: skip
        for topic, n in sorted(snap.hits.items()):
            hits.add_metric([topic], n)
        yield hits
        deliveries = GaugeMetricFamily("watcher_deliveries", "Digest deliveries per status and channel.",
                                       labels=["status", "channel"])  # fmt: skip
        for (status, channel), n in sorted(snap.deliveries.items()):
            deliveries.add_metric([status, channel], n)
        yield deliveries
        duration = snap.state.get("last_cycle_seconds")
        if duration is not None:
            yield GaugeMetricFamily(
                "watcher_last_cycle_duration_seconds", "How long the last poll cycle took.",
                value=_number(duration),
            )  # fmt: skip
        for key, (name, doc) in TIMES.items():
            when = parse_ts(snap.state.get(key))
            if when is not None:
                yield GaugeMetricFamily(name, doc, value=when.timestamp())


def _number(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0  # a hand-edited state row must not break every scrape


def render(snap: Snapshot, *, process: bool = True) -> bytes:
    """The Prometheus text exposition; `process` adds this process's CPU, memory and open files."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    if process:
        ProcessCollector(registry=registry)
    return bytes(generate_latest(registry))
