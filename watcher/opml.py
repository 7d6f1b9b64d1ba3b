"""OPML subscription lists in and out: the format every feed reader imports and exports.

Reading goes through listparser (OPML 1.0 and 2.0, lenient about the broken files real readers export), always
handed bytes: given a ``str`` that looks like a URL it would fetch it itself, and only fetch.py speaks HTTP.

How outlines map onto Watcher's feeds:

- the outline's ``text`` (else ``title``) is the feed's name; no name when it is empty or just the URL;
- every enclosing folder outline and every segment of the OPML 2.0 ``category`` attribute
  (``"/News/Balkans,/sr"``) becomes a tag, in document order, without repeats;
- ``feed://`` and ``feed:https://`` URLs (old browser conventions) become plain http(s); anything else that is
  not http(s) is skipped with a reason, as are links to other lists and repeated feeds.

Writing builds OPML 2.0 with the standard library's ElementTree, which escapes attribute values. Each feed is
written once, inside a folder named after its first tag, with all its tags in ``category`` as well, so a reader
that knows only folders keeps the first tag and listparser gets every tag back.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

import listparser

from watcher.errors import WatcherError
from watcher.htmltext import clean, collapse_inline, truncate
from watcher.urls import canonical_url

MAX_OPML_BYTES = 20_000_000  # a list of ~100,000 feeds; bigger is a wrong file, not a subscription list
_NAME_LIMIT = 200
_HTTP_URL = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)
NOT_HTTP = "not an http(s) URL"  # the reason an outline's URL was skipped; config.py refuses such files


class OpmlError(WatcherError):
    """A file that cannot be read as an OPML subscription list; the message names the file."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A feed to be configured: what an OPML outline or a discovered feed contributes to a `[[feeds]]` table."""

    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """An outline that did not become a feed, and why (for the import report)."""

    url: str
    title: str
    reason: str


@dataclass(frozen=True, slots=True)
class Subscriptions:
    title: str | None
    version: str  # listparser's: opml1, opml2 or opml (no version attribute)
    feeds: tuple[FeedEntry, ...]
    skipped: tuple[Skipped, ...]


def feed_url(raw: str) -> str | None:
    """An outline's ``xmlUrl`` as an http(s) URL, or None when it is not one."""
    url = raw.strip()
    lower = url.lower()
    if lower.startswith("feed:"):
        rest = url[5:]
        url = rest if rest.lower().startswith(("http://", "https://")) else "http:" + rest
    return url if _HTTP_URL.match(url) else None


def _label(value: str) -> str:
    return truncate(collapse_inline(clean(value)), _NAME_LIMIT)


def _tags(categories: Iterable[Iterable[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for path in categories:
        for segment in path:
            tag = _label(segment)
            if tag and tag not in out:
                out.append(tag)
    return tuple(out)


def read_opml(data: bytes, source: str) -> Subscriptions:
    """The feeds of an OPML document; ``source`` names it in errors. Raises OpmlError for anything that is
    not OPML (an RSS feed, an HTML page, an empty file): listparser itself reports those as an empty list."""
    if not data.strip():
        raise OpmlError(f"{source}: empty file, not an OPML subscription list")
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"{source}: larger than {MAX_OPML_BYTES:,} bytes, not a subscription list")
    parsed = listparser.parse(bytes(data))
    version = str(parsed.get("version") or "")
    if not version.startswith("opml"):
        what = f"a {version} list" if version else "not OPML"
        raise OpmlError(f"{source}: {what}; expected an OPML subscription list (<opml><body><outline …>)")
    feeds: list[FeedEntry] = []
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}
    for raw in parsed.get("feeds", []):
        title = _label(str(raw.get("title") or ""))
        given = str(raw.get("url") or "")
        url = feed_url(given)
        if url is None:
            skipped.append(Skipped(given, title, NOT_HTTP))
            continue
        key = canonical_url(url)
        if key in seen:
            skipped.append(Skipped(url, title, f"the same feed as {seen[key]}"))
            continue
        seen[key] = url
        name = title if title and title != url and title != given.strip() else None
        feeds.append(FeedEntry(url=url, name=name, tags=_tags(raw.get("categories", []))))
    for raw in parsed.get("lists", []):
        url, title = str(raw.get("url") or ""), _label(str(raw.get("title") or ""))
        skipped.append(Skipped(url, title, "a link to another subscription list (not followed)"))
    meta = parsed.get("meta") or {}
    return Subscriptions(
        title=_label(str(meta.get("title") or "")) or None,
        version=version,
        feeds=tuple(feeds),
        skipped=tuple(skipped),
    )


def load_opml(path: Path) -> Subscriptions:
    """``read_opml`` of a file; an unreadable file is an OpmlError naming it."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_OPML_BYTES + 1)
    except OSError as e:
        raise OpmlError(f"{path}: cannot read: {e.strerror or e}") from e
    return read_opml(data, str(path))


# --- writing -------------------------------------------------------------------------------------------


def _attr(value: str) -> str:
    """Attribute text ElementTree can write as valid XML: it escapes markup but not control characters."""
    return collapse_inline(clean(value))


def _category(tags: Sequence[str]) -> str:
    # A "/" or "," inside a tag would split it on the way back; such a tag lives only in the folder name.
    return ",".join("/" + t for t in tags if t and "/" not in t and "," not in t)


def write_opml(feeds: Sequence[FeedEntry], *, title: str, created: datetime) -> bytes:
    """OPML 2.0 for ``feeds``: one folder per first tag (in order of first use), untagged feeds at the top
    level after the folders. A feed without a name is labelled with its URL, as OPML requires a ``text``."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _attr(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(created)
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    loose: list[FeedEntry] = []
    for feed in feeds:
        first = next((t for t in feed.tags if _attr(t)), None)
        if first is None:
            loose.append(feed)
            continue
        if first not in folders:
            folders[first] = ET.SubElement(body, "outline", text=_attr(first), title=_attr(first))
        _feed_outline(folders[first], feed)
    for feed in loose:
        _feed_outline(body, feed)
    ET.indent(root, space="  ")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _feed_outline(parent: ET.Element, feed: FeedEntry) -> None:
    label = _attr(feed.name or "") or feed.url
    attrs = {"type": "rss", "text": label, "title": label, "xmlUrl": _attr(feed.url)}
    category = _category([_attr(t) for t in feed.tags])
    if category:
        attrs["category"] = category
    ET.SubElement(parent, "outline", attrs)
