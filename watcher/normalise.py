"""Raw feed entries → :class:`~watcher.models.Item`: stable ids, plain text, absolute links, UTC dates.

Pure functions over plain values; parse.py turns each parser's output (feedparser, JSON Feed, the fast lxml
path) into :class:`RawEntry` first, so every format gets exactly the same treatment.

Identity (``Item.guid`` and ``Item.id_source``):

1. the entry's own id (RSS ``<guid>``, Atom ``<id>``, JSON Feed ``id``) → ``"guid"``;
2. else its link, made absolute → ``"link"``;
3. else ``"sha256:"`` + a hash of title, date and the first 200 characters of the summary → ``"hash"``.

Some CMSs stamp one GUID on every item (or on each item of a day). Taken literally, that would make every new
item look like an update of the first, and it would never be reported. So when one guid occurs more than once
in a document *with different links*, each of those entries gets ``guid + "#" + link`` instead (``id_source``
stays ``"guid"``). Entries that repeat both guid and link are true duplicates: only the first is kept.
An id longer than 1,000 characters is replaced by ``"sha256:"`` + its hash, since it is identity, not text.

Language tags are lower-cased with ``_`` turned into ``-`` ("sr-Latn" → "sr-latn", "en_US" → "en-us"):
BCP 47 tags are case-insensitive, and one spelling keeps per-language filters simple. Anything that is not
shaped like a tag is dropped.

Dates: the first *plausible* of published, updated, created. Plausible means on or after 1990-01-01 and at
most two days after ``now``: feeds emit the Unix epoch, year 0001 or 2099 when their CMS lost the date, and
such a date would sort an item to the top for decades or hide it forever.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

from watcher.htmltext import clean, plain_text
from watcher.models import Item

TITLE_LIMIT = 1_000
TEXT_LIMIT = 100_000
AUTHOR_LIMIT = 300
ID_LIMIT = 1_000
LINK_LIMIT = 4_000
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=2)

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
# An absolute link that resolving leaves as it is: lower-case http(s), an ASCII host, no space or control
# after it (callers also require str.isprintable()), no ";" in the path (urlparse would split it off as
# params) and no empty "?" or "#" (urlunparse drops them). Most feeds' links have this shape, and
# absolute_link returns them after one match.
_PLAIN_ABSOLUTE = re.compile(
    r"https?://[A-Za-z0-9.-]+(?:/[^\x00-\x20\x7f;?#]*)?(?:\?[^\x00-\x20\x7f#]+)?(?:#[^\x00-\x20\x7f]+)?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawEntry:
    """One entry as a parser saw it: strings as found (HTML or not), dates already parsed."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    title_is_html: bool = False
    summary: str | None = None
    summary_is_html: bool = True
    content: str | None = None
    content_is_html: bool = True
    dates: tuple[datetime | None, ...] = ()  # published, updated, created: in order of preference
    author: str | None = None
    language: str | None = None


def normalise_language(tag: str | None) -> str | None:
    """``tag`` as a lower-case BCP 47-shaped tag, or None when absent or not tag-shaped."""
    if not tag:
        return None
    tag = clean(tag).strip().lower().replace("_", "-")[:35]
    return tag if _LANGUAGE.fullmatch(tag) else None


def absolute_link(link: str | None, base: str | None) -> str | None:
    """``link`` resolved against ``base``; None unless the result is an http(s) URL with a host.

    javascript:, data:, file: and the like are dropped, not escaped: a link is only ever followed.
    """
    if not link:
        return None
    plain = link.strip() if len(link) <= LINK_LIMIT else ""
    if plain and plain.isprintable() and _PLAIN_ABSOLUTE.fullmatch(plain) is not None and _parses(base):
        # What the general path below would return: clean() and the whitespace join only remove the
        # whitespace around it (a printable string holds no other whitespace and nothing clean() drops),
        # and urljoin gives such a link back unchanged.
        return plain
    link = "".join(clean(link[: LINK_LIMIT * 2]).split())  # feeds wrap long URLs over several lines
    if not link or len(link) > LINK_LIMIT:
        return None
    try:
        own = urlsplit(link)
        if own.scheme and not own.hostname:
            return (
                None  # "https://" or "javascript:x": urljoin would quietly return the base for some of these
            )
        resolved = urljoin(base, link) if base else link
        parts = urlsplit(resolved)
    except ValueError:  # e.g. an invalid IPv6 literal "http://[::1"
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return resolved


def _parses(base: str | None) -> bool:
    """Whether urljoin can parse ``base`` (it raises on some, such as "http://[::1"); cheap, since urlsplit
    caches its results and one feed's links share their base."""
    if not base:
        return True
    try:
        urlsplit(base)
    except ValueError:
        return False
    return True


def plausible_date(value: datetime | None, now: datetime) -> datetime | None:
    """``value`` in UTC if it lies between 1990 and two days after ``now``; naive values are taken as UTC."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    if value < EARLIEST or value > now + FUTURE_SLACK:
        return None
    return value


def parse_rfc3339(value: object) -> datetime | None:
    """A JSON Feed date (RFC 3339) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def plain_title(value: str | None, *, is_html: bool) -> str:
    return plain_text(value, is_html=is_html, limit=TITLE_LIMIT, inline=True)


def _clean_id(value: str | None) -> str | None:
    if not value:
        return None
    value = clean(value).strip()
    if not value:
        return None
    if len(value) > ID_LIMIT:
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
    return value


def _hash_id(title: str, published: datetime | None, summary: str) -> str:
    basis = "\n".join((title, published.isoformat() if published else "", summary[:200]))
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _one_entry(
    raw: RawEntry, *, base_url: str | None, feed_language: str | None, now: datetime
) -> tuple[Item, str | None]:
    """The entry as an Item whose guid is not yet disambiguated, plus its raw guid."""
    title = plain_title(raw.title, is_html=raw.title_is_html)
    summary = plain_text(raw.summary, is_html=raw.summary_is_html, limit=TEXT_LIMIT)
    content = plain_text(raw.content, is_html=raw.content_is_html, limit=TEXT_LIMIT)
    if content == summary:
        content = ""  # feeds often repeat the body in both places; Item.text would show it once anyway
    link = absolute_link(raw.link, base_url)
    published = next(
        (d for d in (plausible_date(d, now) for d in raw.dates) if d is not None),
        None,
    )
    author = plain_text(raw.author, is_html=False, limit=AUTHOR_LIMIT, inline=True)
    guid = _clean_id(raw.guid)
    if guid is not None:
        ident, source = guid, "guid"
    elif link is not None:
        ident, source = link, "link"
    else:
        ident, source = _hash_id(title, published, summary or content), "hash"
    item = Item(
        guid=ident,
        title=title,
        link=link,
        published=published,
        summary=summary,
        content=content,
        author=author or None,
        language=normalise_language(raw.language) or feed_language,
        id_source=source,
    )
    return item, guid


def normalise_entries(
    raws: Iterable[RawEntry],
    *,
    base_url: str | None,
    feed_language: str | None,
    now: datetime,
) -> list[Item]:
    """Items for all entries of one document, in document order, with document-wide unique ids.

    ``base_url`` resolves relative links (the feed's URL); ``feed_language`` is used for entries that do not
    state their own (pass it through :func:`normalise_language` first).
    """
    pairs = [_one_entry(r, base_url=base_url, feed_language=feed_language, now=now) for r in raws]
    links_by_guid: defaultdict[str, set[str | None]] = defaultdict(set)
    for item, guid in pairs:
        if guid is not None:
            links_by_guid[guid].add(item.link)
    items: list[Item] = []
    seen: set[str] = set()
    for item, guid in pairs:
        if guid is not None and len(links_by_guid[guid]) > 1:
            suffix = item.link or _hash_id(item.title, item.published, item.summary)
            item = _with_guid(item, f"{guid}#{suffix}")
        if item.guid in seen:
            continue
        seen.add(item.guid)
        items.append(item)
    return items


def _with_guid(item: Item, guid: str) -> Item:
    return Item(
        guid=guid,
        title=item.title,
        link=item.link,
        published=item.published,
        summary=item.summary,
        content=item.content,
        author=item.author,
        language=item.language,
        id_source=item.id_source,
    )


# --- JSON Feed (https://www.jsonfeed.org/version/1.1/) ---


def _str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # JSON Feed 1.0 producers sometimes emit numeric ids
    return None


def _json_author(item: Mapping[str, object]) -> str | None:
    authors = item.get("authors")
    candidates: list[object] = list(authors[:5]) if isinstance(authors, list) else []
    candidates.append(item.get("author"))
    for a in candidates:
        if isinstance(a, Mapping):
            name = _str(a.get("name"))
            if name:
                return name
    return None


def raw_entry_from_json(item: Mapping[str, object]) -> RawEntry:
    """A JSON Feed item as a RawEntry. Unknown or mistyped fields are ignored, never fatal."""
    html = _str(item.get("content_html"))
    text = _str(item.get("content_text"))
    return RawEntry(
        guid=_str(item.get("id")),
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")),
        title_is_html=False,
        summary=_str(item.get("summary")),
        summary_is_html=False,
        content=html if html is not None else text,
        content_is_html=html is not None,
        dates=(parse_rfc3339(item.get("date_published")), parse_rfc3339(item.get("date_modified"))),
        author=_json_author(item),
        language=_str(item.get("language")),
    )
