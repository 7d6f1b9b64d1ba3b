"""Pure time decisions: when a feed is polled next, when to skip validators, what counts as backlog.

Everything takes `now` as an argument, so tests never touch the clock. Rules follow miniflux's
ScheduleNextCheck: the next poll is the latest of the interval, the backoff and Retry-After, clamped
between the feed's interval and `max_backoff`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def jitter(url: str, interval: float, fraction: float = 0.1) -> float:
    """A stable per-feed offset in [0, fraction*interval) so feeds added together do not poll in lockstep."""
    h = int.from_bytes(hashlib.blake2b(url.encode(), digest_size=4).digest(), "big")
    return (h / 2**32) * interval * fraction


def next_poll_ok(now: datetime, interval: float) -> datetime:
    return now + timedelta(seconds=interval)


def backoff_delay(
    interval: float, failures: int, max_backoff: float, retry_after: float | None = None
) -> float:
    """Exponential backoff: interval * 2^(failures-1), never below the interval, never above max_backoff.

    A server's Retry-After is honoured when it asks for longer, but still capped, so a hostile
    `Retry-After: 99999999` cannot silence a feed for years.
    """
    ceiling = max(interval, max_backoff)
    delay = interval * (2 ** max(0, min(failures - 1, 30)))
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return float(min(max(delay, interval), ceiling))


def next_poll_failed(
    now: datetime, interval: float, failures: int, max_backoff: float, retry_after: float | None = None
) -> datetime:
    return now + timedelta(seconds=backoff_delay(interval, failures, max_backoff, retry_after))


def needs_unconditional(last_unconditional: datetime | None, now: datetime, every: float) -> bool:
    """Whether to fetch without validators: some servers answer 304 although the feed changed."""
    if every <= 0:
        return False
    return last_unconditional is None or (now - last_unconditional).total_seconds() >= every


def is_backlog(*, first_poll: bool, published: datetime | None, now: datetime, window: float) -> bool:
    """On a feed's first poll only recent items may alert; older ones (or undated ones) are backlog.

    Undated items on a first poll are backlog too: without a date we cannot tell a fresh story from a
    ten-year-old archive entry, and flooding the analyst is the worse error.
    """
    if not first_poll:
        return False
    if published is None:
        return True
    return (now - published).total_seconds() > window


def is_due(next_poll: datetime | None, now: datetime) -> bool:
    return next_poll is None or next_poll <= now
