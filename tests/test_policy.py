from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher import policy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = 86400.0


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 900),  # first failure: the interval itself, never below it
        (2, None, 1800),
        (3, None, 3600),
        (10, None, DAY),  # capped at max_backoff
        (60, None, DAY),  # no overflow for long outages
        (1, 7200, 7200),  # Retry-After asks for longer: honoured
        (1, 60, 900),  # Retry-After shorter than the interval: the interval wins
        (1, 10**9, DAY),  # a hostile Retry-After is capped
    ],
)
def test_backoff(failures: int, retry_after: float | None, expected: float) -> None:
    assert policy.backoff_delay(900, failures, DAY, retry_after) == expected


def test_backoff_never_below_interval_even_when_interval_exceeds_cap() -> None:
    assert policy.backoff_delay(2 * DAY, 1, DAY) == 2 * DAY


def test_next_poll_failed_adds_delay() -> None:
    assert policy.next_poll_failed(NOW, 600, 2, DAY) == NOW + timedelta(seconds=1200)


@pytest.mark.parametrize(
    ("last", "expected"),
    [(None, True), (NOW - timedelta(hours=7), True), (NOW - timedelta(hours=5), False)],
)
def test_needs_unconditional(last: datetime | None, expected: bool) -> None:
    assert policy.needs_unconditional(last, NOW, 6 * 3600) is expected


def test_unconditional_disabled_with_zero() -> None:
    assert policy.needs_unconditional(None, NOW, 0) is False


@pytest.mark.parametrize(
    ("first_poll", "published", "expected"),
    [
        (True, NOW - timedelta(hours=2), False),  # recent: may alert
        (True, NOW - timedelta(days=3), True),  # old: backlog
        (True, None, True),  # undated on a first poll: backlog, never a flood
        (False, NOW - timedelta(days=300), False),  # after the first poll every new item counts
        (False, None, False),
    ],
)
def test_backlog(first_poll: bool, published: datetime | None, expected: bool) -> None:
    assert policy.is_backlog(first_poll=first_poll, published=published, now=NOW, window=DAY) is expected


def test_jitter_is_stable_and_bounded() -> None:
    a = policy.jitter("https://example.org/feed", 900)
    assert a == policy.jitter("https://example.org/feed", 900)
    assert 0 <= a < 90
    assert a != policy.jitter("https://example.org/other", 900)


def test_is_due() -> None:
    assert policy.is_due(None, NOW)
    assert policy.is_due(NOW, NOW)
    assert not policy.is_due(NOW + timedelta(seconds=1), NOW)
