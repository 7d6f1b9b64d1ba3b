"""Digest schedules: the `digest = "..."` strings of the config, and the APScheduler triggers they become.

Grammar (case-insensitive, surrounding spaces ignored)::

    immediate                 after each poll cycle (no trigger: the daemon sends when hits arrive)
    hourly                    minute 0 of every hour
    hourly :MM                minute MM of every hour
    daily HH:MM               once per local day
    weekly DAY HH:MM          DAY = mon..sun or monday..sunday
    cron "m h dom mon dow"    standard crontab fields; the quotes are optional; 0 and 7 are Sunday

Times are wall-clock times in the topic's (or channel's) IANA timezone, so a daily 08:00 digest stays at
08:00 local across DST (huginn #1357, OpenCTI #4310 are the bugs this avoids).

Two DST rules, the same as Vixie cron's: a wall time that does not exist on the spring-forward day fires
once, at the first instant after the gap; a wall time that happens twice on the fall-back day fires only the
first time, unless the hour is a wildcard (hourly, or cron with hour ``*``), which fires every real hour.
APScheduler 3.x alone fires a fixed-hour job twice in the repeated hour; `_WallClockCronTrigger` fixes that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

ScheduleKind = Literal["immediate", "hourly", "daily", "weekly", "cron"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {day: day for day in _DAYS} | {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")
_EXAMPLES = "write 'immediate', 'hourly', 'daily 08:00', 'weekly mon 08:00' or 'cron \"0 8 * * 1-5\"'"
# Crontab numbers weekdays from Sunday = 0 (and 7); APScheduler 3.x from Monday = 0 (its issue #286).
# Numbers are translated to names so a user's crontab line means what it means everywhere else.
_CRON_DOW = {"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri", "6": "sat", "7": "sun"}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed digest schedule. ``text`` is the canonical spelling, fit for logs and `check` output."""

    kind: ScheduleKind
    minute: int = 0
    hour: int | None = None  # daily / weekly
    day_of_week: str | None = None  # weekly: mon..sun
    cron: str | None = None  # cron: the five fields, day-of-week already in names

    @property
    def text(self) -> str:
        if self.kind == "immediate":
            return "immediate"
        if self.kind == "hourly":
            return "hourly" if self.minute == 0 else f"hourly :{self.minute:02d}"
        if self.kind == "daily":
            return f"daily {self.hour:02d}:{self.minute:02d}"
        if self.kind == "weekly":
            return f"weekly {self.day_of_week} {self.hour:02d}:{self.minute:02d}"
        return f'cron "{self.cron}"'

    def __str__(self) -> str:
        return self.text

    def trigger(self, tz: str) -> Any:
        """The APScheduler trigger for this schedule in IANA zone ``tz``; None for ``immediate``.

        Typed ``Any`` because APScheduler 3.x ships no type information.
        """
        zone = zone_info(tz)
        if self.kind == "immediate":
            return None
        if self.kind == "hourly":
            return _WallClockCronTrigger(minute=self.minute, timezone=zone, repeat_folds=True)
        if self.kind == "daily":
            return _WallClockCronTrigger(hour=self.hour, minute=self.minute, timezone=zone)
        if self.kind == "weekly":
            return _WallClockCronTrigger(
                day_of_week=self.day_of_week, hour=self.hour, minute=self.minute, timezone=zone
            )
        assert self.cron is not None
        minute, hour, day, month, dow = self.cron.split()
        return _WallClockCronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=zone,
            repeat_folds=hour == "*",
        )


_MAX_SHIFT = timedelta(hours=3)


class _WallClockCronTrigger(CronTrigger):  # type: ignore[misc]
    """A CronTrigger whose fire times are computed on the wall clock, then placed on the timeline.

    APScheduler 3.x does its field arithmetic on aware local datetimes, and around DST that skips days
    (a daily 00:30 Belgrade job jumps from 30 March to 1 April 2025; its issues #529 and #606) or fires a
    fixed-hour job twice in the repeated hour. Here the same fields run in a DST-free calendar (an inner
    trigger in UTC whose "UTC" is really local wall time), and each wall time found is mapped to instants:
    a time in the spring gap to the first instant after it, a time in the autumn overlap to its first
    occurrence, plus its second one when ``repeat_folds`` (wildcard hours) asks for every real hour.
    """

    def __init__(self, *, repeat_folds: bool = False, timezone: ZoneInfo, **fields: Any) -> None:
        super().__init__(timezone=timezone, **fields)
        self.repeat_folds = repeat_folds
        self._wall = CronTrigger(timezone=UTC, **fields)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # As CronTrigger: the first fire time after the previous one (even if already past, so the
        # scheduler can apply its misfire rules), else the first at or after now.
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            start = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        zone: ZoneInfo = self.timezone
        # Wall order is not time order around a transition (02:10 CET comes after 02:20 CEST), so walls
        # from a little before start's wall time are mapped and the earliest instant >= start wins.
        # No zone's offset moves by more than _MAX_SHIFT, so later walls cannot win.
        probe = start.astimezone(zone).replace(tzinfo=None, fold=0) - _MAX_SHIFT
        best: datetime | None = None
        while True:
            found = self._wall.get_next_fire_time(None, probe.replace(tzinfo=UTC))
            if found is None:
                break
            wall: datetime = found.replace(tzinfo=None)
            if best is not None and wall > best.astimezone(zone).replace(tzinfo=None) + _MAX_SHIFT:
                break
            for instant in self._instants(wall, zone):
                if instant >= start and (best is None or instant < best):
                    best = instant
            probe = wall + timedelta(seconds=1)
        return None if best is None else best.astimezone(zone)

    def _instants(self, wall: datetime, zone: ZoneInfo) -> list[datetime]:
        first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first.astimezone(zone).replace(tzinfo=None) != wall:
            # Spring gap: the wall time does not exist. fold=0 reads it with the old offset, which lands
            # just after the gap (02:30 -> 03:30 CEST); fold=1 would land before it.
            return [first]
        return [first, second] if self.repeat_folds else [first]

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state["repeat_folds"] = self.repeat_folds
        state["wall"] = self._wall
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.repeat_folds = state["repeat_folds"]
        self._wall = state["wall"]


def zone_info(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with the reason for a misspelt or unknown zone."""
    if not name or name != name.strip():
        raise ValueError(f"not an IANA timezone: {name!r} (write e.g. 'UTC' or 'Europe/Belgrade')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown timezone {name!r} (write an IANA name, e.g. 'Europe/Belgrade')") from e


def check_timezone(name: str) -> str:
    """Pydantic-friendly validator: returns ``name`` unchanged when it is a known IANA zone."""
    zone_info(name)
    return name


def check_schedule(text: str) -> str:
    """Pydantic-friendly validator: returns the canonical spelling of a valid schedule."""
    return parse_schedule(text).text


def _time(text: str, original: str) -> tuple[int, int]:
    m = _HHMM.fullmatch(text)
    if not m:
        raise ValueError(f"bad digest schedule {original!r}: {text!r} is not a time HH:MM; {_EXAMPLES}")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"bad digest schedule {original!r}: {text!r} is not a time of day (00:00-23:59)")
    return hour, minute


def _cron_fields(expr: str, original: str) -> str:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"bad digest schedule {original!r}: cron needs 5 fields (minute hour day month weekday), "
            f"got {len(fields)}"
        )
    fields[4] = re.sub(r"\d+", lambda m: _CRON_DOW.get(m.group(0), m.group(0)), fields[4].lower())
    try:
        # Building the trigger is APScheduler's own validation of every field's syntax and range.
        CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3], day_of_week=fields[4])
    except ValueError as e:
        raise ValueError(f"bad digest schedule {original!r}: {e}") from e
    return " ".join(fields)


def parse_schedule(text: str) -> Schedule:
    """Parse a digest schedule string (grammar in the module docstring); ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a digest schedule must be a string, got {text!r}")
    s = " ".join(text.split())
    words = s.lower().split(" ")
    kind = words[0]
    if kind == "immediate" and len(words) == 1:
        return Schedule("immediate")
    if kind == "hourly" and len(words) <= 2:
        if len(words) == 1:
            return Schedule("hourly")
        m = re.fullmatch(r":?(\d{1,2})", words[1])
        if not m or int(m.group(1)) > 59:
            raise ValueError(f"bad digest schedule {text!r}: write 'hourly' or 'hourly :15'")
        return Schedule("hourly", minute=int(m.group(1)))
    if kind == "daily" and len(words) == 2:
        hour, minute = _time(words[1], text)
        return Schedule("daily", hour=hour, minute=minute)
    if kind == "weekly" and len(words) == 3:
        day = _DAY_NAMES.get(words[1])
        if day is None:
            raise ValueError(f"bad digest schedule {text!r}: {words[1]!r} is not a weekday (mon..sun)")
        hour, minute = _time(words[2], text)
        return Schedule("weekly", hour=hour, minute=minute, day_of_week=day)
    if kind == "cron":
        expr = s[len("cron") :].strip()
        if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "\"'":
            expr = expr[1:-1]
        return Schedule("cron", cron=_cron_fields(expr, text))
    raise ValueError(f"bad digest schedule {text!r}: {_EXAMPLES}")


def next_fire_times(schedule: Schedule, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end) the daemon's trigger would produce, as aware datetimes in ``tz``.

    Uses the very trigger the daemon schedules, so tests of this list are tests of production timing.
    ``immediate`` has no clock times and yields an empty list.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    trigger = schedule.trigger(tz)
    if trigger is None:
        return []
    zone = zone_info(tz)
    out: list[datetime] = []
    previous: datetime | None = None
    now = start
    while True:
        nxt: datetime | None = trigger.get_next_fire_time(previous, now)
        if nxt is None or nxt >= end:
            return out
        # Normalise through UTC so a time inside the spring-forward gap reads as the real local time.
        out.append(nxt.astimezone(UTC).astimezone(zone))
        previous = now = nxt
        if len(out) > 100_000:  # a runaway cron over a huge range is a caller bug, not a hang
            raise ValueError("too many fire times; narrow the range")
