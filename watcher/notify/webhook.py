"""Generic JSON webhooks, and the HTTP POST + status mapping that the Slack sender shares.

Status mapping (the caller decides about retries from the AlertError it gets):
  2xx              delivered
  429              transient, ``retry_after`` from Retry-After (seconds or an HTTP date)
  3xx              permanent: webhooks are POSTs, and following a redirect would turn them into GETs
  other 4xx        permanent: the URL or the payload is wrong (Slack's 404 "no_service", 400 "invalid_blocks")
  5xx, network     transient (503 may carry Retry-After too)
Error messages never contain the URL: webhook URLs are credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from watcher.channels import WebhookChannel
from watcher.digest import Digest, webhook_payload
from watcher.errors import AlertError
from watcher.models import USER_AGENT

log = logging.getLogger(__name__)


class PartialDeliveryError(AlertError):
    """A multi-part delivery stopped after ``sent`` of ``total`` parts were accepted.

    Resend the *same* Digest with ``skip_parts=sent`` to deliver only the rest.
    """

    def __init__(
        self,
        channel: str,
        message: str,
        *,
        sent: int,
        total: int,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            channel,
            f"{message} (after {sent} of {total} parts)",
            permanent=permanent,
            retry_after=retry_after,
        )
        self.sent = sent
        self.total = total


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


async def post_json(
    client: httpx.AsyncClient,
    channel: str,
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    """POST ``body`` (JSON) to ``url``; return on 2xx, otherwise raise AlertError as mapped above."""
    all_headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    try:
        response = await client.post(url, content=body, headers=all_headers)
    except httpx.TimeoutException as e:
        raise AlertError(channel, f"timed out ({type(e).__name__})") from e
    except httpx.HTTPError as e:
        # str(e) of a transport error is the OS reason ("Connection refused"), not the URL.
        raise AlertError(channel, f"could not reach the endpoint: {type(e).__name__}: {e}") from e
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}"
    if excerpt := _excerpt(response.text):
        detail += f": {excerpt}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        raise AlertError(channel, f"rate limited ({detail})", retry_after=retry_after)
    if 300 <= status < 400:
        raise AlertError(
            channel, f"{detail}: the endpoint redirects; configure its final URL", permanent=True
        )
    if 400 <= status < 500:
        raise AlertError(channel, f"rejected ({detail})", permanent=True)
    raise AlertError(channel, f"server error ({detail})", retry_after=retry_after)


def signature(secret: str, body: bytes) -> str:
    """The X-Watcher-Signature value: receivers recompute it to know the POST came from us."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def send(channel: WebhookChannel, digest: Digest, *, name: str = "webhook", skip_parts: int = 0) -> int:
    """POST ``webhook_payload(digest)``; returns the number of parts (always 1)."""
    if skip_parts >= 1:
        return 1
    body = encode(webhook_payload(digest))
    headers = {"X-Watcher-Topic": digest.topic, **channel.headers}
    if channel.secret is not None:
        headers["X-Watcher-Signature"] = signature(channel.secret.get_secret_value(), body)
    async with httpx.AsyncClient(timeout=channel.timeout, follow_redirects=False) as client:
        await post_json(client, name, channel.url.get_secret_value(), body, headers=headers)
    log.info("channel=%s topic=%s delivered webhook digest (%d stories)", name, digest.topic, digest.count)
    return 1
