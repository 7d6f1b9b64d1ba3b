"""Feed health in `watcher feeds`: a store filled by real polls of local feeds at chosen times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clihelp import cli, json_lines
from tests.feedmaker import Entry, rss
from tests.feedserver import FeedServer
from watcher.config import Config, load_config
from watcher.fetch import Fetcher
from watcher.health import assess, feed_reports, items_per_day
from watcher.models import FeedState, FeedStatus
from watcher.pipeline import Runtime, poll_all, sync_feeds
from watcher.store import Store

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _entries(prefix: str, start: datetime, step: timedelta, n: int) -> list[Entry]:
    return [
        Entry(
            f"{prefix}-{i}",
            f"{prefix} story {i}",
            f"http://example.org/{prefix}/{i}",
            "text",
            start + i * step,
        )
        for i in range(n)
    ]


def _poll(cfg: Config, at: datetime, *names: str) -> None:
    async def go() -> None:
        with Store(cfg.database_path) as store:
            async with Fetcher() as fetcher:
                rt = Runtime(config=cfg, store=store, fetcher=fetcher, clock=Clock(at))
                sync_feeds(rt)
                await poll_all(rt, [f for f in cfg.feeds if f.name in names])

    asyncio.run(go())


@pytest.fixture
def desk(feed_server: FeedServer, tmp_path: Path) -> tuple[Path, Config, datetime]:
    """Six feeds with six different histories, polled over the last ten days; returns (config, now)."""
    now = datetime.now(UTC).replace(microsecond=0)
    names = ["wire", "daily", "gone", "failing", "blip", "new"]
    text = f'[watcher]\ndatabase = "{tmp_path.as_posix()}/w.db"\n' + "".join(
        f'[[feeds]]\nurl = "{feed_server.url("/" + n)}"\nname = "{n}"\n' for n in names
    )
    path = tmp_path / "watcher.toml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)

    # wire: twenty items an hour apart, then nothing new for ten days although it answers every poll
    feed_server.serve("/wire", rss(_entries("wire", now - 10 * DAY - 20 * HOUR, HOUR, 20)))
    _poll(cfg, now - 10 * DAY, "wire")
    _poll(cfg, now - HOUR, "wire")
    # daily: one item a day for ten days, fetched today
    feed_server.serve("/daily", rss(_entries("daily", now - 9 * DAY, DAY, 10)))
    _poll(cfg, now - HOUR, "daily")
    # gone: the publisher removed it
    feed_server.status("/gone", 410)
    _poll(cfg, now - 2 * DAY, "gone")
    # failing: fine three days ago, HTTP 500 twice since (fewer than three failures, but for days)
    feed_server.serve("/failing", rss(_entries("failing", now - 4 * DAY, HOUR, 3)))
    _poll(cfg, now - 3 * DAY, "failing")
    feed_server.status("/failing", 500)
    _poll(cfg, now - 2 * DAY, "failing")
    _poll(cfg, now - DAY, "failing")
    # blip: fine an hour ago, one timeout-like failure now
    feed_server.serve("/blip", rss(_entries("blip", now - 5 * HOUR, HOUR, 3)))
    _poll(cfg, now - HOUR, "blip")
    feed_server.status("/blip", 503)
    _poll(cfg, now - 10 * timedelta(minutes=1), "blip")
    # new: configured, never polled
    return path, cfg, now


def test_health_of_each_feed(desk: tuple[Path, Config, datetime]) -> None:
    _, cfg, now = desk
    with Store(cfg.database_path) as store:
        reports = {
            r.state.url.rsplit("/", 1)[1]: r for r in feed_reports(store, [f.url for f in cfg.feeds], now)
        }
    kinds = {name: r.verdict.kind for name, r in reports.items()}
    assert kinds == {
        "wire": "silent",
        "daily": "ok",
        "gone": "gone",
        "failing": "failing",
        "blip": "error",
        "new": "never",
    }
    words = {name: r.verdict.words for name, r in reports.items()}
    assert words["wire"] == "silent: no new item for 10d (usually every 1h)"
    assert words["gone"] is not None and "HTTP 410 Gone" in words["gone"]
    assert words["failing"] == (
        "failing (2 times in a row, last success 3d ago): HTTP 500 Internal Server Error"
    )
    assert words["blip"] == "HTTP 503 Service Unavailable"
    assert words["daily"] is None
    rates = {name: r.items_per_day for name, r in reports.items()}
    assert rates["daily"] == round(10 / 9, 2)  # ten items over the nine days they span
    assert rates["wire"] == round(20 / (10 + 20 / 24), 2)  # twenty items, none in the last ten days
    assert rates["new"] is None and rates["gone"] is None
    assert reports["wire"].usual_gap == 3600.0
    assert reports["daily"].recent_items == 10


def test_feeds_json_keeps_old_fields_and_adds_health(desk: tuple[Path, Config, datetime]) -> None:
    path, _, _ = desk
    rows = {r["name"]: r for r in json_lines(path, "feeds")}
    assert set(rows) == {"wire", "daily", "gone", "failing", "blip", "new"}  # none dropped, gone included
    old = {"url", "name", "status", "last_error", "last_polled", "last_success", "next_poll", "failures", "items",
           "title"}  # fmt: skip
    new = {"health", "problem", "items_per_day", "recent_items", "usual_gap", "last_new_item"}
    assert all(set(r) >= old | new for r in rows.values())
    assert rows["gone"]["status"] == "gone" and rows["gone"]["health"] == "gone"
    assert rows["failing"]["status"] == "error" and rows["failing"]["failures"] == 2
    assert rows["failing"]["health"] == "failing"
    assert rows["wire"]["health"] == "silent" and rows["wire"]["usual_gap"] == 3600
    assert rows["daily"]["items"] == 10 and rows["daily"]["items_per_day"] == 1.11
    assert rows["new"]["status"] == "never" and rows["new"]["items_per_day"] is None


def test_feeds_table_shows_health_in_words(desk: tuple[Path, Config, datetime]) -> None:
    path, _, _ = desk
    out = cli(path, "feeds").stdout
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert lines["wire"].startswith("silent") and "no new item for 10d" in lines["wire"]
    assert lines["failing"].startswith("failing") and "HTTP 500" in lines["failing"]
    assert lines["gone"].startswith("gone") and "410" in lines["gone"]
    assert lines["daily"].startswith("ok") and " 1.11 " in lines["daily"]
    assert "never" in lines["new"]


# --- the pure rules --------------------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (FeedState(url="u"), "never"),
        (FeedState(url="u", status=FeedStatus.OK, last_success=NOW), "ok"),
        (FeedState(url="u", status=FeedStatus.NOT_MODIFIED, last_success=NOW), "ok"),
        (FeedState(url="u", status=FeedStatus.ERROR, failures=1, last_success=NOW - HOUR), "error"),
        (FeedState(url="u", status=FeedStatus.ERROR, failures=1), "error"),  # never worked, first try
        (FeedState(url="u", status=FeedStatus.ERROR, failures=1, last_success=NOW - 2 * DAY), "failing"),
        (FeedState(url="u", status=FeedStatus.ERROR, failures=3, last_success=NOW - HOUR), "failing"),
        (FeedState(url="u", status=FeedStatus.GONE), "gone"),
    ],
)
def test_assess(state: FeedState, kind: str) -> None:
    assert assess(state, None, NOW).kind == kind


@pytest.mark.parametrize(
    ("count", "oldest", "rate"),
    [
        (0, None, 0.0),
        (30, NOW - 30 * DAY, 1.0),
        (30, NOW - 90 * DAY, 1.0),  # never averaged over more than the window
        (10, NOW - 2 * DAY, 5.0),  # a feed watched two days is averaged over two
        (10, NOW - HOUR, 10.0),  # nor over less than a day
    ],
)
def test_items_per_day(count: int, oldest: datetime | None, rate: float) -> None:
    assert items_per_day(count, oldest, NOW, 30 * 86400.0) == rate
