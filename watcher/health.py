"""Feed health in words, for digests and `watcher feeds`: failing, gone, or silent for too long.

"Silent" compares the time since a feed's last new item with its own usual gap between items, so a
feed that publishes weekly is not flagged after a quiet day, while a wire feed that stops for six hours is.

The daemon's own liveness (`liveness`, `check_liveness`) is one rule shared by `watcher health` and
/healthz, so Docker's HEALTHCHECK means the same whichever of the two it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.digest import FeedHealth
from watcher.errors import StoreError
from watcher.models import FeedState, FeedStatus
from watcher.store import Store, parse_ts, ts
from watcher.units import format_duration

SILENT_FACTOR = 5.0  # silent after this many usual gaps without a new item
MIN_SILENCE = 6 * 3600.0  # never call a feed silent before this
FAILING_AFTER = 3  # consecutive failures before a feed is reported as failing


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return format_duration(max(60, round((now - then).total_seconds() / 60) * 60)) + " ago"


def problem(state: FeedState, usual_gap: float | None, now: datetime) -> str | None:
    """Words for what is wrong with a feed, or None when it is healthy (a first failure is not a problem yet)."""
    verdict = assess(state, usual_gap, now)
    return verdict.words if verdict.kind in PROBLEMS else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A feed's health: `kind` is one of KINDS; `words` explain anything but ok."""

    kind: str
    words: str | None = None


KINDS = ("ok", "never", "error", "failing", "silent", "gone")
PROBLEMS = frozenset({"failing", "silent", "gone"})  # what digests report; "error" is a blip until it repeats
FAILING_FOR = 86400.0  # an erroring feed whose last success is older than this is failing, however few tries


def assess(state: FeedState, usual_gap: float | None, now: datetime) -> Verdict:
    """The feed's health. Gone and failing feeds stay in every listing: a dead source is never dropped quietly."""
    if state.status == FeedStatus.GONE:
        return Verdict("gone", state.last_error or "gone (HTTP 410)")
    if state.status == FeedStatus.ERROR:
        since_success = (now - state.last_success).total_seconds() if state.last_success else 0.0
        long_ago = since_success >= FAILING_FOR
        if state.failures >= FAILING_AFTER or long_ago:
            return Verdict(
                "failing",
                f"failing ({state.failures} times in a row, last success {_ago(now, state.last_success)}): "
                + (state.last_error or "error"),
            )
        return Verdict("error", state.last_error or "error")
    if usual_gap and state.last_new_item is not None:
        silence = (now - state.last_new_item).total_seconds()
        if silence > max(MIN_SILENCE, SILENT_FACTOR * usual_gap):
            return Verdict(
                "silent",
                f"silent: no new item for {_ago(now, state.last_new_item)[:-4]} "
                f"(usually every {format_duration(round(usual_gap / 60) * 60 or 60)})",
            )
    if state.status == FeedStatus.NEVER:
        return Verdict("never", "not polled yet")
    return Verdict("ok")


def items_per_day(count: int, oldest: datetime | None, now: datetime, window: float) -> float:
    """A feed's rate over the last ``window`` seconds, or over the span its items cover when that is shorter
    (a feed watched for two days is not averaged over thirty); never over less than a day."""
    if count == 0 or oldest is None:
        return 0.0
    span = min(max((now - oldest).total_seconds(), 86400.0), window)
    return count * 86400.0 / span


HISTORY_DAYS = 30  # items per day and the usual gap are measured over this much recent history


@dataclass(frozen=True, slots=True)
class FeedReport:
    """One configured feed's health for `watcher feeds`."""

    state: FeedState
    verdict: Verdict
    usual_gap: float | None  # seconds between items, learnt from recent history
    recent_items: int  # items dated within the last HISTORY_DAYS
    items_per_day: float | None  # None until the feed has been polled successfully


def feed_reports(store: Store, urls: Sequence[str], now: datetime) -> list[FeedReport]:
    """Health of each feed in ``urls``, in that order; a feed the store has never seen is "never"."""
    since = now - timedelta(days=HISTORY_DAYS)
    states = {s.url: s for s in store.feed_states(with_counts=True)}
    gaps = store.feed_gaps(since)
    counts = store.recent_item_counts(since)
    out = []
    for url in urls:
        state = states.get(url) or FeedState(url=url)
        count, oldest = counts.get(url, (0, None))
        rate = None
        if state.last_success is not None:
            rate = round(items_per_day(count, oldest, now, HISTORY_DAYS * 86400.0), 2)
        gap = gaps.get(url)
        out.append(FeedReport(state, assess(state, gap, now), gap, count, rate))
    return out


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


@dataclass(frozen=True, slots=True)
class Liveness:
    """Whether the daemon polls and its database takes writes; `detail` says why in one line."""

    ok: bool
    detail: str
    last_cycle: datetime | None


PROBE_TIMEOUT = 5.0  # a health check answers within Docker's default 30 s timeout even behind a writer


def liveness(
    last_tick: datetime | None,
    last_cycle: datetime | None,
    now: datetime,
    max_age: float,
    write_error: str | None = None,
) -> Liveness:
    """The rule: healthy when the database took a write and the daemon ticked or finished a cycle within
    `max_age` seconds. A tick counts as much as a cycle: a feed hanging until its fetch deadline keeps its
    cycle open but must not make a scheduler that still runs look dead."""
    last = max((t for t in (last_tick, last_cycle) if t is not None), default=None)
    shown = last.astimezone(UTC).isoformat(timespec="seconds") if last else "never"
    if write_error is not None:
        return Liveness(ok=False, detail=write_error, last_cycle=last)
    if last is None or (now - last).total_seconds() > max_age:
        return Liveness(ok=False, detail=f"last poll cycle {shown}", last_cycle=last)
    return Liveness(ok=True, detail=f"last poll cycle {shown}", last_cycle=last)


def check_liveness(
    store: Store, now: datetime, max_age: float, *, timeout: float = PROBE_TIMEOUT
) -> Liveness:
    """`liveness` of a live store: writes one probe row (proving writes work), reads the daemon's marks."""
    try:
        store.probe_write("health_probe", ts(now) or "", timeout)
        write_error = None
    except StoreError as e:
        write_error = str(e)
    return liveness(
        parse_ts(store.get_state("last_tick")), parse_ts(store.get_state("last_cycle")), now, max_age,
        write_error,
    )  # fmt: skip
