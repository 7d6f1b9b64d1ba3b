"""Pending (hit, channel) deliveries: the outbox that makes digests at-least-once and, barring a crash
between a send and its record, exactly-once. A digest's rows are marked sent only after the channel accepted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.store.store import Store, parse_ts, ts


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    hit_id: int
    topic: str
    story: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    next_attempt: datetime | None


_SELECT = (
    "SELECT d.id, d.hit_id, h.topic, s.key AS story, d.channel, d.status, d.attempts, d.last_error, "
    "d.sent_at, d.next_attempt FROM deliveries d JOIN hits h ON h.id = d.hit_id "
    "JOIN stories s ON s.id = h.story_id"
)


def _delivery(r: dict[str, Any]) -> Delivery:
    return Delivery(
        id=r["id"], hit_id=r["hit_id"], topic=r["topic"], story=r["story"], channel=r["channel"],
        status=r["status"], attempts=r["attempts"], last_error=r["last_error"],
        sent_at=parse_ts(r["sent_at"]), next_attempt=parse_ts(r["next_attempt"]),
    )  # fmt: skip


def list_deliveries(
    store: Store, *, status: str | None = None, topic: str | None = None, channel: str | None = None
) -> list[Delivery]:
    where, params = [], []
    for col, val in (("d.status", status), ("h.topic", topic), ("d.channel", channel)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.id"
    return [_delivery(r) for r in store._rows(sql, params)]


def due_deliveries(
    store: Store, now: datetime, *, topic: str | None = None, channel: str | None = None, force: bool = False
) -> list[Delivery]:
    """Pending deliveries whose retry time has come (all pending ones with `force`)."""
    rows = list_deliveries(store, status="pending", topic=topic, channel=channel)
    return [d for d in rows if force or d.next_attempt is None or d.next_attempt <= now]


def mark_sent(store: Store, ids: Sequence[int], now: datetime) -> None:
    with store.transaction():
        for i in ids:
            store.db.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL, "
                "next_attempt = NULL WHERE id = ? AND status != 'sent'",
                [ts(now), i],
            )


def mark_attempt_failed(
    store: Store, ids: Sequence[int], error: str, *, next_attempt: datetime | None, park: bool
) -> None:
    """Record a failed attempt; `park` gives up (status failed) and leaves it to `watcher deliveries`."""
    with store.transaction():
        for i in ids:
            store.db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt = ?, status = ? "
                "WHERE id = ? AND status = 'pending'",
                [error, ts(next_attempt), "failed" if park else "pending", i],
            )


def retry_failed(store: Store, *, topic: str | None = None, channel: str | None = None) -> int:
    """Put parked deliveries back in the queue (after fixing a channel's configuration)."""
    ids = [d.id for d in list_deliveries(store, status="failed", topic=topic, channel=channel)]
    with store.transaction():
        for i in ids:
            store.db.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt = NULL WHERE id = ?",
                [i],
            )
    return len(ids)
