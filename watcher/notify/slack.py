"""Slack incoming-webhook sender.

A digest may need several messages (Block Kit limits, see `digest.slack_payloads`). They are posted in
order and `send` returns only when all were accepted. If part k fails, PartialDeliveryError says how many
went through (``sent``); the caller retries with ``skip_parts=sent`` so readers never see a part twice.
That works because `slack_payloads` is deterministic for a given Digest: retry with the same Digest value,
not one rebuilt with newer hits (those belong to the next digest).
"""

from __future__ import annotations

import logging

import httpx

from watcher.channels import SlackChannel
from watcher.digest import Digest, slack_payloads
from watcher.errors import AlertError
from watcher.notify.webhook import PartialDeliveryError, encode, post_json

log = logging.getLogger(__name__)


async def send(channel: SlackChannel, digest: Digest, *, name: str = "slack", skip_parts: int = 0) -> int:
    """Post every part of ``digest`` from ``skip_parts`` on; returns the total number of parts."""
    payloads = slack_payloads(digest)
    total = len(payloads)
    url = channel.webhook_url.get_secret_value()
    async with httpx.AsyncClient(timeout=channel.timeout, follow_redirects=False) as client:
        for index in range(max(0, skip_parts), total):
            try:
                await post_json(client, name, url, encode(payloads[index]))
            except AlertError as e:
                if total == 1:
                    raise
                raise PartialDeliveryError(
                    name, e.detail, sent=index, total=total, permanent=e.permanent, retry_after=e.retry_after
                ) from e
    log.info(
        "channel=%s topic=%s delivered Slack digest (%d stories, %d parts)",
        name,
        digest.topic,
        digest.count,
        total,
    )
    return total
