"""Digest schedules and channel config: parsing, and fire times across DST through the real triggers."""

from __future__ import annotations

import itertools
import pickle
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from watcher.channels import (
    ChannelConfig,
    EmailChannel,
    SlackChannel,
    channel_heartbeat,
    channel_schedule,
)
from watcher.schedule import Schedule, check_timezone, next_fire_times, parse_schedule

BELGRADE = "Europe/Belgrade"
TZ = ZoneInfo(BELGRADE)


def fires(text: str, start: datetime, end: datetime, tz: str = BELGRADE) -> list[datetime]:
    return next_fire_times(parse_schedule(text), tz, start, end)


def local_day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=TZ)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("immediate", "immediate"),
        ("  Immediate ", "immediate"),
        ("hourly", "hourly"),
        ("hourly :15", "hourly :15"),
        ("hourly 5", "hourly :05"),
        ("daily 08:00", "daily 08:00"),
        ("daily 8:05", "daily 08:05"),
        ("DAILY  23:59", "daily 23:59"),
        ("weekly mon 08:00", "weekly mon 08:00"),
        ("weekly Sunday 7:30", "weekly sun 07:30"),
        ('cron "0 8 * * 1-5"', 'cron "0 8 * * mon-fri"'),
        ("cron 30 6 1 * *", 'cron "30 6 1 * *"'),
        ("cron '0 9 * * 0,6'", 'cron "0 9 * * sun,sat"'),
        ('cron "*/15 * * * *"', 'cron "*/15 * * * *"'),
    ],
)
def test_parse_valid(text: str, canonical: str) -> None:
    schedule = parse_schedule(text)
    assert schedule.text == canonical
    assert parse_schedule(schedule.text) == schedule  # the canonical spelling parses back to itself


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "write 'immediate'"),
        ("sometimes", "write 'immediate'"),
        ("daily", "write 'immediate'"),
        ("daily 8", "not a time HH:MM"),
        ("daily 24:00", "not a time of day"),
        ("daily 08:60", "not a time of day"),
        ("weekly 08:00", "write 'immediate'"),
        ("weekly funday 08:00", "not a weekday"),
        ("hourly :60", "hourly :15"),
        ("cron 0 8 * *", "cron needs 5 fields"),
        ('cron "61 * * * *"', "higher than the maximum"),
        ('cron "0 8 * * 9"', "bad digest schedule"),
        ("immediate now", "write 'immediate'"),
    ],
)
def test_parse_invalid_says_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="bad digest schedule") as e:
        parse_schedule(text)
    assert says in str(e.value)


def test_immediate_has_no_trigger_and_no_fire_times() -> None:
    assert parse_schedule("immediate").trigger("UTC") is None
    assert fires("immediate", local_day(2025, 1, 1), local_day(2025, 2, 1)) == []


def test_trigger_uses_the_iana_zone() -> None:
    trigger = parse_schedule("daily 08:00").trigger(BELGRADE)
    assert str(trigger.timezone) == BELGRADE
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_schedule("daily 08:00").trigger("Europe/Atlantis")


def test_daily_0800_belgrade_fires_once_every_local_day_of_2025() -> None:
    times = fires("daily 08:00", local_day(2025, 1, 1), local_day(2026, 1, 1))
    days = [t.date() for t in times]
    assert len(days) == 365
    assert days == [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]  # none skipped or doubled
    assert {(t.hour, t.minute) for t in times} == {(8, 0)}
    assert all(
        t.tzinfo is not None and t.utcoffset() in (timedelta(hours=1), timedelta(hours=2)) for t in times
    )


@pytest.mark.parametrize(
    ("day", "before", "after"),
    [
        ((2025, 3, 30), timedelta(hours=1), timedelta(hours=2)),  # spring forward: CET -> CEST
        ((2025, 10, 26), timedelta(hours=2), timedelta(hours=1)),  # fall back: CEST -> CET
    ],
)
def test_daily_0800_around_each_dst_change(
    day: tuple[int, int, int], before: timedelta, after: timedelta
) -> None:
    start = local_day(*day) - timedelta(days=1)
    times = fires("daily 08:00", start, start + timedelta(days=3))
    assert [t.date() for t in times] == [start.date() + timedelta(days=i) for i in range(3)]
    assert [t.hour for t in times] == [8, 8, 8]
    assert [t.utcoffset() for t in times] == [before, after, after]
    gaps = [b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(times)]
    assert gaps == [timedelta(hours=24) - (after - before), timedelta(hours=24)]  # a 23 h or 25 h day


def test_time_inside_the_spring_gap_fires_once_after_it() -> None:
    times = fires("daily 02:30", local_day(2025, 3, 29), local_day(2025, 4, 1))
    assert [(t.day, t.hour, t.minute) for t in times] == [(29, 2, 30), (30, 3, 30), (31, 2, 30)]


def test_time_in_the_repeated_autumn_hour_fires_once() -> None:
    # APScheduler 3.x alone fires at 02:30 CEST and again at 02:30 CET; a daily digest must not.
    times = fires("daily 02:30", local_day(2025, 10, 25), local_day(2025, 10, 28))
    assert [(t.day, t.hour, t.minute) for t in times] == [(25, 2, 30), (26, 2, 30), (27, 2, 30)]
    assert times[1].utcoffset() == timedelta(hours=2)  # the first of the two 02:30s
    weekly = fires("weekly sun 02:30", local_day(2025, 10, 20), local_day(2025, 11, 3))
    assert [t.date() for t in weekly] == [date(2025, 10, 26), date(2025, 11, 2)]


@pytest.mark.parametrize(("day", "hours"), [((2025, 3, 30), 23), ((2025, 10, 26), 25), ((2025, 6, 1), 24)])
def test_hourly_fires_every_real_hour(day: tuple[int, int, int], hours: int) -> None:
    start = local_day(*day)
    end = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), TZ)
    times = fires("hourly", start, end)
    assert len(times) == hours
    utc = [t.astimezone(UTC) for t in times]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(utc))
    assert {t.minute for t in times} == {0}


def test_cron_with_wildcard_hour_also_fires_every_real_hour() -> None:
    times = fires('cron "30 * * * *"', local_day(2025, 10, 26), local_day(2025, 10, 27))
    assert len(times) == 25


def test_weekly_fires_on_that_weekday_all_year() -> None:
    times = fires("weekly mon 09:15", local_day(2025, 1, 1), local_day(2026, 1, 1))
    assert len(times) == 52
    assert {(t.weekday(), t.hour, t.minute) for t in times} == {(0, 9, 15)}


def test_cron_weekdays_use_crontab_numbering() -> None:
    week = (local_day(2025, 6, 2), local_day(2025, 6, 9))  # Monday to Monday
    assert [t.weekday() for t in fires('cron "0 8 * * 1-5"', *week)] == [0, 1, 2, 3, 4]
    assert [t.weekday() for t in fires('cron "0 8 * * 0"', *week)] == [6]  # 0 is Sunday, as in crontab
    assert [t.weekday() for t in fires('cron "0 8 * * 7"', *week)] == [6]


def test_next_fire_times_range_is_half_open_and_aware() -> None:
    start = local_day(2025, 6, 1).replace(hour=8)
    assert fires("daily 08:00", start, start + timedelta(days=2)) == [start, start + timedelta(days=1)]
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times(parse_schedule("hourly"), "UTC", datetime(2025, 1, 1), datetime(2025, 1, 2))


def test_trigger_survives_pickling_with_its_dst_rule() -> None:
    # APScheduler's persistent job stores pickle triggers; the repeated-hour rule must come back too.
    trigger = pickle.loads(pickle.dumps(parse_schedule("daily 02:30").trigger(BELGRADE)))
    first = trigger.get_next_fire_time(None, local_day(2025, 10, 26))
    second = trigger.get_next_fire_time(first, first)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(days=1, hours=1)  # not the CET 02:30


def test_check_timezone() -> None:
    assert check_timezone(BELGRADE) == BELGRADE
    for bad in ("", "Belgrade", " UTC", "../../etc/passwd"):
        with pytest.raises(ValueError, match="timezone"):
            check_timezone(bad)


def test_schedule_str_is_canonical_text() -> None:
    assert str(Schedule("weekly", hour=7, minute=5, day_of_week="fri")) == "weekly fri 07:05"


# ------------------------------------------------------------------------------------ channel config

CHANNELS: TypeAdapter[dict[str, ChannelConfig]] = TypeAdapter(dict[str, ChannelConfig])


def test_channel_table_validates_into_typed_models() -> None:
    channels = CHANNELS.validate_python(
        {
            "desk": {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
            "team": {
                "type": "email",
                "smtp_host": "smtp.example.org",
                "smtp_port": 587,
                "security": "starttls",
                "username": "",
                "password": "",
                "from": "Watcher <watcher@example.org>",
                "to": "desk@example.org",
                "digest": "daily 7:00",
                "timeout": "45s",
            },
            "hook": {"type": "webhook", "url": "https://example.org/in", "headers": {"X-Token": "t"}},
            "screen": {"type": "console", "file": "data/digests.log", "stdout": False},
        }
    )
    team = channels["team"]
    assert isinstance(team, EmailChannel)
    assert team.from_ == "Watcher <watcher@example.org>"
    assert team.to == ("desk@example.org",)
    assert team.username is None  # an unset ${SMTP_USER} expands to "": no login
    assert team.password is None
    assert team.timeout == 45.0
    assert team.digest == "daily 07:00"
    assert team.port == 587
    desk = channels["desk"]
    assert isinstance(desk, SlackChannel)
    assert "hooks.slack.com" not in repr(desk)  # the webhook URL is a credential


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"type": "sms"}, "does not match any of the expected tags"),
        ({"type": "slack", "webhook_url": "https://x.example", "channel": "#desk"}, "Extra inputs"),
        ({"type": "slack", "webhook_url": "ftp://x.example"}, "http:// or https://"),
        ({"type": "email", "smtp_host": "h", "from": "a@b.example", "to": []}, "at least 1"),
        ({"type": "email", "smtp_host": "h", "from": "a@b.example\nBcc: c@d", "to": "x@y"}, "single e-mail"),
        ({"type": "email", "smtp_host": "h", "from": "nobody", "to": "x@y.example"}, "not an e-mail address"),
        ({"type": "email", "smtp_host": "h", "from": "a@b", "to": "c@d", "security": "ssl"}, "starttls"),
        ({"type": "email", "smtp_host": "h", "from": "a@b", "to": "c@d", "password": "p"}, "no username"),
        ({"type": "webhook", "url": "https://x.example", "headers": {"Bad Name": "v"}}, "HTTP header"),
        ({"type": "console", "stdout": False}, "needs a file"),
        ({"type": "console", "digest": "daily 25:00"}, "not a time of day"),
        ({"type": "console", "timezone": "Mars/Base"}, "unknown timezone"),
        ({"type": "console", "timeout": "forever"}, "not a duration"),
    ],
)
def test_channel_table_rejections_say_why(table: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        CHANNELS.validate_python({"x": table})


def test_channel_overrides_topic_schedule_timezone_and_heartbeat() -> None:
    channels = CHANNELS.validate_python(
        {
            "plain": {"type": "console"},
            "own": {"type": "console", "digest": "hourly", "timezone": "Asia/Tokyo", "heartbeat": False},
        }
    )
    assert channel_schedule(channels["plain"], digest="daily 08:00", timezone=BELGRADE) == (
        parse_schedule("daily 08:00"),
        BELGRADE,
    )
    assert channel_schedule(channels["own"], digest="daily 08:00", timezone=BELGRADE) == (
        parse_schedule("hourly"),
        "Asia/Tokyo",
    )
    assert channel_heartbeat(channels["plain"], heartbeat=True) is True
    assert channel_heartbeat(channels["own"], heartbeat=True) is False


def test_fire_counts_per_day_never_exceed_one_for_fixed_times() -> None:
    for text in ("daily 00:30", "daily 01:30", "daily 02:00", "daily 02:59", "daily 03:00"):
        times = fires(text, local_day(2025, 1, 1), local_day(2026, 1, 1))
        per_day = Counter(t.date() for t in times)
        assert len(per_day) == 365, text
        assert set(per_day.values()) == {1}, text


@settings(max_examples=25, deadline=None)
@given(
    zone=st.sampled_from(
        [
            "Europe/Belgrade",
            "America/New_York",
            "Australia/Lord_Howe",
            "America/Santiago",
            "Asia/Tokyo",
            "UTC",
        ]
    ),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
)
def test_daily_matches_a_brute_force_calendar(zone: str, hour: int, minute: int) -> None:
    # The oracle: on every local date, the wall time HH:MM read with fold=0 (in a spring gap that is
    # the instant just after the gap; in an autumn overlap, the first occurrence).
    tz = ZoneInfo(zone)
    start, end = datetime(2025, 1, 1, tzinfo=tz), datetime(2026, 1, 1, tzinfo=tz)
    expected = [
        datetime.combine(date(2025, 1, 1) + timedelta(days=i), time(hour, minute), tz).astimezone(UTC)
        for i in range(365)
    ]
    got = fires(f"daily {hour:02d}:{minute:02d}", start, end, zone)
    assert [t.astimezone(UTC) for t in got] == expected
