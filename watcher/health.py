"""Feed health in words, for digests and `watcher feeds`: failing, gone, or silent for too long.

"Silent" compares the time since a feed's last new item with its own usual gap between items, so a
feed that publishes weekly is not flagged after a quiet day, while a wire feed that stops for six hours is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.digest import FeedHealth
from watcher.models import FeedState, FeedStatus
from watcher.units import format_duration

SILENT_FACTOR = 5.0  # silent after this many usual gaps without a new item
MIN_SILENCE = 6 * 3600.0  # never call a feed silent before this
FAILING_AFTER = 3  # consecutive failures before a feed is reported as failing


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return format_duration(max(60, round((now - then).total_seconds() / 60) * 60)) + " ago"


def problem(state: FeedState, usual_gap: float | None, now: datetime) -> str | None:
    """Words for what is wrong with a feed, or None when it is healthy."""
    if state.status == FeedStatus.GONE:
        return state.last_error or "gone (HTTP 410)"
    if state.status == FeedStatus.ERROR and state.failures >= FAILING_AFTER:
        return (
            f"failing ({state.failures} times in a row, last success {_ago(now, state.last_success)}): "
            + (state.last_error or "error")
        )
    if usual_gap and state.last_new_item is not None:
        silence = (now - state.last_new_item).total_seconds()
        if silence > max(MIN_SILENCE, SILENT_FACTOR * usual_gap):
            return f"silent: no new item for {_ago(now, state.last_new_item)[:-4]} (usually every {format_duration(round(usual_gap / 60) * 60 or 60)})"
    return None


def feed_health(
    states: Sequence[FeedState], gaps: Mapping[str, float], names: Mapping[str, str], now: datetime
) -> tuple[list[FeedHealth], int]:
    """The unhealthy feeds and the number of healthy ones."""
    problems = []
    for s in states:
        p = problem(s, gaps.get(s.url), now)
        if p is not None:
            problems.append(
                FeedHealth(name=names.get(s.url) or s.name or s.title or s.url, url=s.url, problem=p)
            )
    return problems, len(states) - len(problems)
