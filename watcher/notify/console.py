"""Console sender: the plain-text digest on stdout and/or appended to a log file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from watcher.channels import ConsoleChannel
from watcher.digest import Digest, render_text
from watcher.errors import AlertError

SEPARATOR = "=" * 72


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


async def send(
    channel: ConsoleChannel,
    digest: Digest,
    *,
    name: str = "console",
    skip_parts: int = 0,
    stream: TextIO | None = None,
) -> int:
    """Write the digest; ``stream`` replaces stdout (tests, the CLI's preview). Returns 1 part."""
    if skip_parts >= 1:
        return 1
    text = render_text(digest)
    if channel.stdout:
        out = stream if stream is not None else sys.stdout
        out.write(text + "\n")
        out.flush()
    if channel.file:
        try:
            await asyncio.to_thread(_append, Path(channel.file), f"{SEPARATOR}\n{text}\n")
        except OSError as e:
            fixable = isinstance(e, PermissionError | IsADirectoryError | NotADirectoryError)
            raise AlertError(
                name, f"cannot append to {channel.file}: {e.strerror or e}", permanent=fixable
            ) from e
    return 1
