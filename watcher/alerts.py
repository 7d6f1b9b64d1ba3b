"""Turning pending deliveries into sent digests: the outbox side of alerting, shared by the daemon and
`watcher digest`.

    for each (topic, channel) asked for:
        due = pending deliveries whose retry time has come
        digest = build_digest(their hits, feed health)
        send it; mark the rows sent only after the channel accepted
        on failure: count the attempt, back off (honouring Retry-After), park as failed after N attempts
        or at once when the channel said it will never work (bad webhook); the stories of Slack parts
        that were accepted before a later part failed count as sent, so a retry never reposts them
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher import policy
from watcher.channels import AnyChannel, ConsoleChannel, EmailChannel, SlackChannel, channel_heartbeat
from watcher.channels import channel_schedule as _channel_schedule
from watcher.config import Config, Topic
from watcher.digest import (
    Digest,
    FeedHealth,
    build_digest,
    render_text,
    slack_parts_hits,
    slack_payloads,
    webhook_payload,
)
from watcher.errors import AlertError
from watcher.health import feed_health
from watcher.notify import PartialDeliveryError, send_digest
from watcher.notify.email import build_message
from watcher.schedule import Schedule
from watcher.store import Store
from watcher.store.deliveries import Delivery, due_deliveries, mark_attempt_failed, mark_sent

log = logging.getLogger(__name__)

RETRY_BASE = 60.0  # first retry after a minute, doubling
RETRY_MAX = 6 * 3600.0
GAP_HISTORY_DAYS = 30  # a feed's "usual gap" is learnt from this much recent history


@dataclass(frozen=True, slots=True)
class DigestReport:
    topic: str
    channel: str
    stories: int
    hits: int
    ok: bool
    error: str | None = None
    rendered: str | None = None  # with dry_run: exactly what would be sent


def channel_schedule(config: Config, topic: Topic, channel: str) -> tuple[Schedule, str]:
    return _channel_schedule(
        config.file.channels[channel], digest=topic.config.digest, timezone=topic.config.timezone
    )


def render(channel: AnyChannel, digest: Digest) -> str:
    """What the channel would receive, for `--dry-run`."""
    if isinstance(channel, SlackChannel):
        return json.dumps(slack_payloads(digest), indent=2, ensure_ascii=False)
    if isinstance(channel, EmailChannel):
        return build_message(channel, digest).as_string()
    if isinstance(channel, ConsoleChannel):
        return render_text(digest)
    return json.dumps(webhook_payload(digest), indent=2, ensure_ascii=False)


def _health(config: Config, store: Store, now: datetime) -> tuple[list[FeedHealth], int]:
    urls = [f.url for f in config.feeds]
    names = {f.url: f.name or "" for f in config.feeds}
    gaps = store.feed_gaps(now - timedelta(days=GAP_HISTORY_DAYS))
    problems, healthy = feed_health(store.feed_states(urls), gaps, names, now)
    return problems, healthy


async def deliver(
    config: Config,
    store: Store,
    now: datetime,
    *,
    topic: str | None = None,
    channel: str | None = None,
    only_schedule: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    heartbeat: bool = False,
) -> list[DigestReport]:
    """Send what is pending for the chosen topics and channels.

    `only_schedule="immediate"` restricts to pairs whose schedule is immediate (the daemon calls this after
    each poll cycle); `force` ignores retry back-off (the CLI's "send it now"); `heartbeat` lets an empty
    digest go out where the topic or channel asks for heartbeats (scheduled runs do, immediate ones don't).
    """
    reports = []
    health: tuple[list[FeedHealth], int] | None = None
    for t in config.topics:
        if topic is not None and t.name != topic:
            continue
        for ch_name in t.config.channels:
            if channel is not None and ch_name != channel:
                continue
            schedule, tz = channel_schedule(config, t, ch_name)
            if only_schedule is not None and schedule.kind != only_schedule:
                continue
            ch = config.file.channels[ch_name]
            due = due_deliveries(store, now, topic=t.name, channel=ch_name, force=force or dry_run)
            wants_heartbeat = heartbeat and channel_heartbeat(ch, heartbeat=t.config.heartbeat)
            if not due and not wants_heartbeat:
                continue
            if health is None:
                health = _health(config, store, now)
            hits = store.hits(ids=[d.hit_id for d in due]) if due else []
            digest = build_digest(
                t.name, hits, generated_at=now, timezone=tz,
                feed_health=health[0], healthy_feeds=health[1],
            )  # fmt: skip
            if dry_run:
                reports.append(
                    DigestReport(t.name, ch_name, digest.count, len(hits), True, None, render(ch, digest))
                )
                continue
            reports.append(
                await _send(store, ch_name, ch, digest, due, now, config.watcher.delivery_attempts)
            )
    return reports


async def _send(
    store: Store,
    name: str,
    ch: AnyChannel,
    digest: Digest,
    due: list[Delivery],
    now: datetime,
    max_attempts: int,
) -> DigestReport:
    ids = [d.id for d in due]
    try:
        await send_digest(name, ch, digest)
    except AlertError as e:
        if isinstance(e, PartialDeliveryError) and isinstance(ch, SlackChannel) and e.sent > 0:
            ids = _settle_accepted_parts(store, digest, due, e.sent, now)
        attempts = max((d.attempts for d in due), default=0) + 1
        park = e.permanent or attempts >= max_attempts
        delay = policy.backoff_delay(RETRY_BASE, attempts, RETRY_MAX, e.retry_after)
        mark_attempt_failed(store, ids, e.detail, next_attempt=None if park else now + timedelta(seconds=delay),
                            park=park)  # fmt: skip
        if park:
            log.error("channel=%s topic=%s delivery failed for good after %d attempts: %s",
                      name, digest.topic, attempts, e.detail)  # fmt: skip
        else:
            log.warning("channel=%s topic=%s delivery failed (attempt %d), retry in %.0fs: %s",
                        name, digest.topic, attempts, delay, e.detail)  # fmt: skip
        return DigestReport(digest.topic, name, digest.count, len(ids), False, e.detail)
    mark_sent(store, ids, now)
    return DigestReport(digest.topic, name, digest.count, len(ids), True)


def _settle_accepted_parts(
    store: Store, digest: Digest, due: list[Delivery], sent: int, now: datetime
) -> list[int]:
    """Mark the deliveries of the Slack parts already posted as sent; returns the ids still to send.

    The next attempt builds its digest from what is still pending, so readers see each story once even
    though the parts are numbered afresh.
    """
    accepted = {h for part in slack_parts_hits(digest)[:sent] for h in part}
    done = [d.id for d in due if d.hit_id in accepted]
    if done:
        mark_sent(store, done, now)
    return [d.id for d in due if d.hit_id not in accepted]
