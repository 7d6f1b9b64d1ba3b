from __future__ import annotations

import pytest

from watcher.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1d12h", 129600), ("1h 30m", 5400),
     ("90", 90), (45, 45), ("250ms", 0.25), ("1w", 604800), ("1.5h", 5400)],
)  # fmt: skip
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "fast", "15x", "m15", "10m later", "-5s", -3])
def test_bad_durations(bad: str | int) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [("10MB", 10_000_000), ("10MiB", 10 * 1024**2), ("512KB", 512_000), ("1GB", 10**9), ("100", 100),
     (2048, 2048), ("3 kb", 3000)],
)  # fmt: skip
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "big", "10TB", "MB", "-1MB"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_format_duration_round_trips() -> None:
    for s in (30, 900, 7200, 86400, 45.5):
        assert parse_duration(format_duration(s)) == s
