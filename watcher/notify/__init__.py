"""Channel senders. Each module has ``async def send(channel, digest, *, name, skip_parts=0) -> int``,
returning the number of parts the digest took, and raises watcher.errors.AlertError on failure
(``permanent`` = do not retry; ``retry_after`` = seconds the far end asked for). A multi-part failure is a
PartialDeliveryError whose ``sent`` is the ``skip_parts`` to retry with.

    send_digest(name, channel, digest)   dispatches on the channel's type
"""

from __future__ import annotations

from watcher.channels import AnyChannel, ConsoleChannel, EmailChannel, SlackChannel, WebhookChannel
from watcher.digest import Digest
from watcher.notify import console, email, slack, webhook
from watcher.notify.webhook import PartialDeliveryError

__all__ = ["PartialDeliveryError", "send_digest"]


async def send_digest(name: str, channel: AnyChannel, digest: Digest, *, skip_parts: int = 0) -> int:
    """Deliver ``digest`` to channel ``name``; returns how many parts it took (see module docstring)."""
    if isinstance(channel, SlackChannel):
        return await slack.send(channel, digest, name=name, skip_parts=skip_parts)
    if isinstance(channel, EmailChannel):
        return await email.send(channel, digest, name=name, skip_parts=skip_parts)
    if isinstance(channel, WebhookChannel):
        return await webhook.send(channel, digest, name=name, skip_parts=skip_parts)
    if isinstance(channel, ConsoleChannel):
        return await console.send(channel, digest, name=name, skip_parts=skip_parts)
    raise TypeError(f"no sender for channel type {type(channel).__name__}")
