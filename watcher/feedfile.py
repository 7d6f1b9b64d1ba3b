"""Adding feeds to the configuration file without disturbing what a person wrote in it.

New feeds are appended as `[[feeds]]` tables at the end of the TOML file: TOML lets an array of tables grow
after other tables, so the file's existing text, order and comments stay byte for byte as they were (a TOML
round trip through a parser would drop every comment). The new text is validated as a whole configuration
before it replaces the file, and the replacement is atomic, so a failed import leaves the file untouched.

Whether a feed is already configured is decided by canonical URL (`watcher.urls`), so `http://www.x.org/feed/`
and `https://x.org/feed` are one feed, and feeds that come from `[[opml]]` files count as configured.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from watcher.config import Config, FeedConfig, load_config
from watcher.errors import ConfigError
from watcher.opml import FeedEntry
from watcher.urls import canonical_url


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import would do: feeds to add, and feeds left out with the reason."""

    add: tuple[FeedEntry, ...]
    skip: tuple[tuple[FeedEntry, str], ...]


def configured(config: Config) -> dict[str, FeedConfig]:
    """Every feed of the configuration (enabled or not, from [[feeds]] or [[opml]]) by canonical URL."""
    return {canonical_url(f.url): f for f in config.file.feeds}


def plan(config: Config, entries: Sequence[FeedEntry]) -> Plan:
    known = configured(config)
    add: list[FeedEntry] = []
    skip: list[tuple[FeedEntry, str]] = []
    for entry in entries:
        key = canonical_url(entry.url)
        if key in known:
            have = known[key]
            label = f"{have.name!r} ({have.url})" if have.name else have.url
            skip.append((entry, f"already configured as {label}"))
            continue
        known[key] = FeedConfig(url=entry.url, name=entry.name, tags=entry.tags)
        add.append(entry)
    return Plan(add=tuple(add), skip=tuple(skip))


def toml_string(value: str) -> str:
    """A TOML basic string. Control characters are escaped (TOML forbids them raw); the rest stays UTF-8."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def feeds_toml(entries: Sequence[FeedEntry], comment: str | None = None) -> str:
    """`[[feeds]]` tables for ``entries``, preceded by ``comment`` lines."""
    lines: list[str] = []
    if comment:
        lines.extend("# " + line if line else "#" for line in comment.splitlines())
    for entry in entries:
        if lines:
            lines.append("")
        lines.append("[[feeds]]")
        lines.append(f"url = {toml_string(entry.url)}")
        if entry.name:
            lines.append(f"name = {toml_string(entry.name)}")
        if entry.tags:
            lines.append(f"tags = [{', '.join(toml_string(t) for t in entry.tags)}]")
    return "\n".join(lines) + "\n"


def appended(text: str, block: str) -> str:
    """``text`` with ``block`` after it, separated by one blank line."""
    if not text:
        return block
    return text.rstrip("\n") + "\n\n" + block


def append_feeds(config_path: Path, entries: Sequence[FeedEntry], *, comment: str | None = None) -> None:
    """Append ``entries`` to the configuration file at ``config_path``, atomically.

    Raises ConfigError (naming ``config_path``) and leaves the file unchanged when the result would not be a
    valid configuration, e.g. when the file spells its feeds as an inline array that tables cannot extend.
    """
    if not entries:
        return
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(config_path), "", f"cannot read: {e.strerror or e}") from e
    new_text = appended(text, feeds_toml(entries, comment))
    folder = config_path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{config_path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new_text)
        try:
            load_config(tmp)  # in the same folder, so relative [[opml]] paths resolve the same way
        except ConfigError as e:
            detail = str(e).replace(str(tmp), str(config_path))
            raise ConfigError(
                str(config_path), "", f"not changed: adding the feeds would make it invalid: {detail}"
            ) from None
        try:
            os.chmod(tmp, config_path.stat().st_mode & 0o7777)
        except OSError:
            pass  # keeping the mode is a courtesy; the content is what matters
        os.replace(tmp, config_path)
    finally:
        tmp.unlink(missing_ok=True)
