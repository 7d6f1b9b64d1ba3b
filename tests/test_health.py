from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.health import feed_health, problem
from watcher.models import FeedState, FeedStatus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOUR = 3600.0


@pytest.mark.parametrize(
    ("state", "gap", "words"),
    [
        (FeedState(url="u", status=FeedStatus.OK, last_new_item=NOW - timedelta(hours=2)), HOUR, None),
        (FeedState(url="u", status=FeedStatus.OK, last_new_item=NOW - timedelta(hours=8)), HOUR, "silent"),
        # a weekly feed quiet for three days is not silent
        (
            FeedState(url="u", status=FeedStatus.OK, last_new_item=NOW - timedelta(days=3)),
            7 * 24 * HOUR,
            None,
        ),
        # short gaps never flag a feed before the minimum silence
        (FeedState(url="u", status=FeedStatus.OK, last_new_item=NOW - timedelta(hours=1)), 60.0, None),
        (FeedState(url="u", status=FeedStatus.ERROR, failures=1, last_error="HTTP 500"), None, None),
        (
            FeedState(url="u", status=FeedStatus.ERROR, failures=4, last_error="HTTP 500"),
            None,
            "failing (4 times",
        ),
        (FeedState(url="u", status=FeedStatus.GONE, last_error="HTTP 410 Gone"), None, "410"),
    ],
)
def test_problem_words(state: FeedState, gap: float | None, words: str | None) -> None:
    got = problem(state, gap, NOW)
    if words is None:
        assert got is None
    else:
        assert got is not None and words in got


def test_feed_health_counts_healthy_feeds_and_uses_configured_names() -> None:
    states = [
        FeedState(url="a", status=FeedStatus.OK),
        FeedState(url="b", status=FeedStatus.ERROR, failures=5, last_error="timed out"),
    ]
    problems, healthy = feed_health(states, {}, {"b": "Outlet B"}, NOW)
    assert healthy == 1
    assert [(p.name, p.url) for p in problems] == [("Outlet B", "b")]
    assert "timed out" in problems[0].problem
