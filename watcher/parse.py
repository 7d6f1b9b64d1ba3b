"""Feed bytes → :class:`~watcher.models.ParsedFeed`. The only module that uses feedparser.

:func:`parse_feed` runs these steps, each of which may end it with :class:`~watcher.errors.ParseError`:

1. an empty body is an error;
2. a JSON body (``{`` first, or a JSON media type) is read as a JSON Feed (feedparser 6 cannot);
3. anything else is decoded to UTF-8 with feedparser's own RFC 3023 rules, so UTF-16/32 and legacy charsets
   are text before any byte-level pattern looks at them;
4. everything before the root element is replaced by a fresh XML declaration. That removes any DOCTYPE with
   its internal subset and every ENTITY declaration, including ones hidden in comments or processing
   instructions where feedparser's own line-anchored patterns would find and *re-insert* them: feedparser
   6.0.14 keeps "safe" internal entities of any length, which its loose parser then expands without bound
   (a quadratic-blowup feed built a 2 GB summary in ~95 s). With no DOCTYPE there is no external entity
   (XXE) either, and expat is told not to load external entities anyway;
5. an HTML page is an error that names the feed the page advertises, if any;
6. the fast lxml path (below; plain RSS 2.0 / Atom 1.0 only) or feedparser builds raw entries: feedparser
   gets bytes (never a URL or ``str``, which it would open), HTML sanitising and URI rewriting off (we want
   plain text and do our own link resolution);
7. the bozo policy: malformed with entries → warning; malformed without entries or a title → error;
8. :func:`watcher.normalise.normalise_entries` makes the Items.

``Content-Location`` is deliberately *not* handed to feedparser: it would resolve every ``<guid>`` against it,
so an item's id would change whenever the feed's URL did. Links are resolved against ``url`` by normalise.
"""

from __future__ import annotations

import html
import io
import json
import re
import time
import xml.sax
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import feedparser
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from lxml import etree

from watcher.errors import ParseError
from watcher.htmltext import clean, discover_feed
from watcher.models import ParsedFeed
from watcher.normalise import (
    RawEntry,
    absolute_link,
    normalise_entries,
    normalise_language,
    plain_title,
    raw_entry_from_json,
)

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_HTML_ROOTS = frozenset({"html", "head", "body"})
_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})
_DECL_TOKEN = re.compile(rb"""["'\[\]>]|<!--""")
_NAME = re.compile(rb"[A-Za-z_:][-A-Za-z0-9_:.]*")
_XML_DECL = b'<?xml version="1.0" encoding="utf-8"?>'
_XML_DECL_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*>")
_REASON_LIMIT = 300
# A numeric character reference, any length: feedparser's loose parser matches the same unbounded form.
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+))")


def parse_feed(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str],
    now: datetime,
    max_items: int = 1000,
    fast_path: bool = True,
) -> ParsedFeed:
    """The feed in ``body`` as clean Items; raises ParseError when ``body`` is not a usable feed.

    ``headers`` are the HTTP response headers (any case); ``url`` is the feed's URL, used to resolve relative
    links and to name the feed in errors; ``now`` bounds plausible dates; at most ``max_items`` entries are
    kept, the first ones in document order. ``fast_path=False`` forces feedparser (for comparisons).
    """
    hdrs = {k.lower(): v for k, v in headers.items()}
    if not body.strip():
        raise ParseError(url, "empty body")
    media = hdrs.get("content-type", "").split(";", 1)[0].strip().lower()
    if _is_json(body, media):
        return _parse_json_feed(body, url=url, now=now, max_items=max_items)

    utf8, scratch = _to_utf8(hdrs, body, url)
    if not scratch.get("encoding"):
        raise ParseError(url, "not a feed: " + _reason(scratch.get("bozo_exception")))
    encoding_note = _reason(scratch.get("bozo_exception")) if scratch.get("bozo") else None
    data, root = rewrite_prolog(utf8)
    data = defuse_char_refs(data)
    if root is None:
        raise ParseError(url, "not a feed: no XML element found")
    local_root = root.rsplit(":", 1)[-1].lower()
    if local_root in _HTML_ROOTS or (media in _HTML_TYPES and local_root not in _FEED_ROOTS):
        raise ParseError(url, _html_message(utf8, url))

    xml_media = media.endswith("+xml") or media in ("application/xml", "text/xml")
    fast = _fast_raw(data, hdrs) if fast_path and xml_media and encoding_note is None else None
    if fast is not None:
        title, title_html, link, lang, raws = fast
        language = normalise_language(lang)
        return ParsedFeed(
            title=plain_title(title, is_html=title_html) or None,
            link=absolute_link(link, url),
            language=language,
            items=tuple(normalise_entries(raws[:max_items], base_url=url, feed_language=language, now=now)),
            warning=_warning(None, len(raws), max_items),
            parser="fast",
        )
    fp_headers = {k: v for k, v in hdrs.items() if k in ("content-type", "content-language")}
    if "content-type" in fp_headers:
        fp_headers["content-type"] = f"{media}; charset=utf-8"
    result = feedparser.parse(
        io.BytesIO(data), response_headers=fp_headers, sanitize_html=False, resolve_relative_uris=False
    )
    return _from_feedparser(
        result, url=url, now=now, max_items=max_items, root=root, encoding_note=encoding_note
    )


def defuse_char_refs(data: bytes) -> bytes:
    """References to no Unicode scalar value (surrogates, past U+10FFFF, absurdly long) become U+FFFD.

    feedparser's loose parser calls ``chr()`` on every reference it meets, so ``&#xD800;``, ``&#x110000;``
    or ``&#99999999999;`` escaped from parse_feed as UnicodeEncodeError, ValueError or OverflowError and
    failed the whole feed as an internal error (found by tests/test_fuzz.py).
    """

    def fix(m: re.Match[bytes]) -> bytes:
        hex_digits, dec_digits = m.group(1), m.group(2)
        digits = (hex_digits or dec_digits).lstrip(b"0")
        if len(digits) <= 8:
            value = int(digits or b"0", 16 if hex_digits else 10)
            if value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
                return m.group(0)
        return b"&#xFFFD"

    return _CHAR_REF.sub(fix, data)


def _from_feedparser(
    result: Any, *, url: str, now: datetime, max_items: int, root: str, encoding_note: str | None
) -> ParsedFeed:
    feed: Mapping[str, Any] = result.get("feed") or {}
    entries: Sequence[Mapping[str, Any]] = result.get("entries") or []
    title = plain_title(_str(feed.get("title")), is_html=_is_html_detail(feed.get("title_detail")))
    bozo = bool(result.get("bozo"))
    reason = _reason(result.get("bozo_exception")) if bozo else encoding_note
    if not entries:
        if bozo and not title:
            raise ParseError(url, f"not a feed: {reason}")
        if not result.get("version") and not title:
            raise ParseError(url, f"not a feed: <{root}> is not an RSS, Atom or RDF root element")
    language = normalise_language(_str(feed.get("language")))
    raws = [_raw_from_feedparser(e) for e in entries[:max_items]]
    items = normalise_entries(raws, base_url=url, feed_language=language, now=now)
    return ParsedFeed(
        title=title or None,
        link=absolute_link(_str(feed.get("link")), url),
        language=language,
        items=tuple(items),
        warning=_warning(reason, len(entries), max_items),
        parser="feedparser",
    )


def _warning(reason: str | None, total: int, max_items: int) -> str | None:
    notes = [reason] if reason else []
    if total > max_items:
        notes.append(f"kept the first {max_items} of {total} entries")
    return "; ".join(notes) or None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_html_detail(detail: object) -> bool:
    return isinstance(detail, Mapping) and str(detail.get("type", "")).lower() in _HTML_TYPES


def _struct_to_datetime(value: object) -> datetime | None:
    """feedparser's ``*_parsed`` (a UTC struct_time) as an aware datetime; None when unrepresentable."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:5], min(value.tm_sec, 59), tzinfo=UTC)  # leap second 60 → 59
    except (ValueError, OverflowError):
        return None


def _raw_from_feedparser(e: Mapping[str, Any]) -> RawEntry:
    link = _str(e.get("link"))
    if not link:
        for candidate in e.get("links") or ():
            if isinstance(candidate, Mapping) and candidate.get("rel", "alternate") == "alternate":
                link = _str(candidate.get("href"))
                if link:
                    break
    contents = [c for c in e.get("content") or () if isinstance(c, Mapping) and _str(c.get("value"))]
    content = "\n".join(dict.fromkeys(str(c["value"]) for c in contents)) or None
    details = [e.get("title_detail"), e.get("summary_detail"), *contents]
    language = next(
        (d["language"] for d in details if isinstance(d, Mapping) and _str(d.get("language"))), None
    )
    # author_detail.name first: feedparser's "author" glues the e-mail address on ("Jane (jane@x)").
    detail = e.get("author_detail")
    author = (_str(detail.get("name")) if isinstance(detail, Mapping) else None) or _str(e.get("author"))
    content_is_html = any(_is_html_detail(c) for c in contents)
    summary_detail = e.get("summary_detail")
    return RawEntry(
        guid=_str(e.get("id")),
        link=link,
        title=_str(e.get("title")),
        title_is_html=_is_html_detail(e.get("title_detail")),
        summary=_str(e.get("summary")),
        # feedparser copies content into a missing summary without a summary_detail; it keeps content's type
        summary_is_html=_is_html_detail(summary_detail) if summary_detail else content_is_html,
        content=content,
        content_is_html=content_is_html,
        dates=tuple(
            _struct_to_datetime(e.get(k)) for k in ("published_parsed", "updated_parsed", "created_parsed")
        ),
        author=author,
        language=language,
    )


def _reason(exc: object) -> str:
    """A bozo exception in words for a person, bounded."""
    if isinstance(exc, xml.sax.SAXParseException):
        text = (
            f"malformed XML at line {exc.getLineNumber()}, column {exc.getColumnNumber()}: {exc.getMessage()}"
        )
    elif exc is None:
        text = "unreadable document"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(clean(text).split())[:_REASON_LIMIT]


def _to_utf8(headers: Mapping[str, str], body: bytes, url: str) -> tuple[bytes, dict[str, Any]]:
    """``body`` decoded by feedparser's RFC 3023 rules and re-encoded as UTF-8, plus its verdict.

    A garbage ``encoding="..."`` (a NUL, non-ASCII bytes) makes feedparser's decoder raise instead of
    moving on, so on failure the XML declaration is dropped and the rules run once more without it.
    """
    for attempt in (body, _XML_DECL_START.sub(b"", body, count=1)):
        scratch: dict[str, Any] = {"bozo": False}
        try:
            return convert_to_utf8(headers, attempt, scratch), scratch
        except (ValueError, LookupError) as e:  # UnicodeDecodeError is a ValueError
            error = e
    raise ParseError(url, f"not a feed: undecodable text ({_reason(error)})") from error


# --- the prolog -------------------------------------------------------------------------------------------


def _decl_end(data: bytes, start: int) -> int:
    """Index just past the ``<!...>`` declaration at ``start``, honouring quotes, ``[...]`` subsets and
    comments; the end of ``data`` if it never closes (so an unterminated DOCTYPE swallows the document)."""
    depth = 0
    pos = start + 2
    while (m := _DECL_TOKEN.search(data, pos)) is not None:
        tok = m.group()
        if tok in (b'"', b"'", b"<!--"):
            close = b"-->" if tok == b"<!--" else tok
            end = data.find(close, m.end())
            if end < 0:
                return len(data)
            pos = end + len(close)
        elif tok == b"[":
            depth, pos = depth + 1, m.end()
        elif tok == b"]":
            depth, pos = max(depth - 1, 0), m.end()
        elif depth == 0:
            return m.end()
        else:
            pos = m.end()
    return len(data)


def rewrite_prolog(data: bytes) -> tuple[bytes, str | None]:
    """``data`` (UTF-8) with everything before its root element replaced by an XML declaration, and the root
    element's name (None when there is none).

    Comments, processing instructions, DOCTYPEs (with internal subsets) and stray text before the root all go:
    none of them can carry feed content, and any of them can carry an ENTITY declaration. The dropped lines
    are kept as newlines so parser errors still point at the right line.
    """
    pos = 0
    n = len(data)
    root: str | None = None
    while pos < n:
        lt = data.find(b"<", pos)
        if lt < 0:
            pos = n
            break
        if data.startswith(b"<?", lt):
            end = data.find(b"?>", lt + 2)
            pos = n if end < 0 else end + 2
        elif data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 4)
            pos = n if end < 0 else end + 3
        elif data.startswith(b"<!", lt):
            pos = _decl_end(data, lt)
        elif m := _NAME.match(data, lt + 1):
            root = m.group().decode("ascii")
            pos = lt
            break
        else:
            pos = lt + 1  # a stray "<" in junk before the root
    head_lines = data.count(b"\n", 0, pos)
    return _XML_DECL + b"\n" * max(head_lines, 1) + data[pos:], root


# --- HTML pages -------------------------------------------------------------------------------------------


def _html_message(html: bytes, url: str) -> str:
    advertised = absolute_link(discover_feed(html, url), url)
    message = "not a feed: got an HTML page"
    return f"{message}; the page advertises a feed at {advertised}" if advertised else message


# --- JSON Feed --------------------------------------------------------------------------------------------


def _is_json(body: bytes, media: str) -> bool:
    first = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return first in (b"{", b"[") or (first != b"<" and "json" in media)


def _parse_json_feed(body: bytes, *, url: str, now: datetime, max_items: int) -> ParsedFeed:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: hostile nesting; ValueError covers bad UTF-8
        raise ParseError(url, f"not a feed: invalid JSON ({' '.join(str(e).split())[:_REASON_LIMIT]})") from e
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/1" not in version:
        raise ParseError(url, "not a feed: a JSON document that is not a JSON Feed (no jsonfeed.org version)")
    title = plain_title(_str(doc.get("title")), is_html=False)
    items = doc.get("items")
    notes: list[str] = []
    if not isinstance(items, list):
        items = []
        notes.append('no "items" list')
    entries = [i for i in items if isinstance(i, dict)]
    if len(entries) < len(items):
        notes.append(f"skipped {len(items) - len(entries)} item(s) that are not JSON objects")
    language = normalise_language(_str(doc.get("language")))
    raws = [raw_entry_from_json(i) for i in entries[:max_items]]
    return ParsedFeed(
        title=title or None,
        link=absolute_link(_str(doc.get("home_page_url")), url),
        language=language,
        items=tuple(normalise_entries(raws, base_url=url, feed_language=language, now=now)),
        warning=_warning("; ".join(notes), len(entries), max_items),
        parser="json",
    )


# --- the fast path ----------------------------------------------------------------------------------------
# A strict lxml reading of plain RSS 2.0 and Atom 1.0 that yields the same RawEntries feedparser would. It
# only accepts documents whose every item/entry child is in a whitelist it mirrors exactly; anything else
# (xml:base, entry-level xml:lang, Media RSS titles, e-mail authors, repeated fields, malformed XML) returns
# None and feedparser runs instead. lxml is told never to resolve entities, load DTDs or touch the network.

_ATOM = "{http://www.w3.org/2005/Atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_XHTML = "{http://www.w3.org/1999/xhtml}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_RSS_FIELDS = frozenset(
    {"title", "link", "description", "guid", "pubDate", "author", _CONTENT, f"{_DC}creator", f"{_DC}date"}
)
_RSS_IGNORED = frozenset(
    {"category", "comments", "enclosure", "source", "{http://wellformedweb.org/CommentAPI/}commentRss",
     "{http://purl.org/rss/1.0/modules/slash/}comments"}
)  # fmt: skip
_RSS_CHANNEL_NAMESPACES = (
    "{http://www.itunes.com/dtds/podcast-1.0.dtd}",
    "{http://purl.org/rss/1.0/modules/syndication/}",
)
_ATOM_FIELDS = frozenset(
    f"{_ATOM}{n}" for n in ("id", "title", "summary", "content", "published", "updated", "author")
)
_ATOM_IGNORED = frozenset(f"{_ATOM}{n}" for n in ("link", "category", "contributor", "rights"))
_ATOM_FEED_CHILDREN = frozenset(
    f"{_ATOM}{n}"
    for n in (
        "title subtitle link id updated author category contributor generator icon logo rights entry"
    ).split()
)
_NESTED_OK = frozenset({f"{_ATOM}author", f"{_ATOM}contributor"})
# feedparser repairs C1 controls and double-encoded UTF-8 ("&#226;&#128;&#166;"); leave those to it.
_C1_REFERENCE = re.compile(rb"&#(?:1[2-5][0-9]|x[89][0-9a-fA-F]);|\xc2[\x80-\x9f]")
_CONTENT_TYPES = {"text": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}


def _is_self_link(el: Any) -> bool:
    """An ``atom:link`` to the feed itself or its hub in an RSS channel (WordPress writes one into every
    feed): feedparser only adds it to ``feed.links``, never to ``feed.link``, so the fast path may skip it."""
    return bool(el.tag == f"{_ATOM}link" and el.get("rel") in ("self", "hub") and not len(el))


class _Unsupported(Exception):
    """The fast path declines; feedparser will parse the document."""


def _fast_parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _text(el: Any) -> str:
    if len(el):
        raise _Unsupported(f"markup inside <{el.tag}>")
    return str(el.text or "").strip()


def _date(el: Any | None) -> datetime | None:
    return _struct_to_datetime(_parse_date(_text(el))) if el is not None else None


def _single(children: Sequence[Any], fields: frozenset[str], ignored: frozenset[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for child in children:
        tag = child.tag
        if not isinstance(tag, str) or child.get(_XML_BASE) is not None or child.get(_XML_LANG) is not None:
            raise _Unsupported("xml:base, xml:lang or an entity in an entry")
        if tag in fields and tag not in found:
            found[tag] = child
        elif tag not in ignored or (len(child) and tag not in _NESTED_OK):
            raise _Unsupported(f"<{tag}> in an entry, or markup inside it")
    return found


def _rss_entry(item: Any) -> RawEntry:
    f = _single(item, _RSS_FIELDS, _RSS_IGNORED)
    guid_el = f.get("guid")
    guid = _text(guid_el) if guid_el is not None else None
    link = _text(f["link"]) if "link" in f else None
    attrs = {k.lower(): v for k, v in guid_el.attrib.items()} if guid_el is not None else {}
    if link is None and guid and attrs.get("ispermalink", "true") == "true":
        link = guid  # feedparser: a permalink guid is the link when there is no <link>
    authors = [_text(f[k]) for k in ("author", f"{_DC}creator") if k in f]
    if len(authors) > 1 or any(c in a for a in authors for c in "@(<"):
        raise _Unsupported("author with an e-mail address, or two authors")
    content = _text(f[_CONTENT]) if _CONTENT in f else None
    return RawEntry(
        guid=guid,
        link=link,
        title=_text(f["title"]) if "title" in f else None,
        title_is_html=False,
        summary=_text(f["description"]) if "description" in f else content,  # feedparser's copy, see above
        content=content,
        dates=(_date(f.get("pubDate")), _date(f.get(f"{_DC}date")), None),
        author=authors[0] if authors else None,
    )


def _atom_text(el: Any | None) -> tuple[str | None, bool]:
    """An Atom text construct as (value, is_html)."""
    if el is None:
        return None, False
    kind = _CONTENT_TYPES.get(el.get("type", "text").lower())
    if kind is None or el.get("src") is not None:
        raise _Unsupported("out-of-line or non-text Atom content")
    if kind == "application/xhtml+xml":
        divs = list(el)
        if len(divs) != 1:
            raise _Unsupported("xhtml content without a single div")
        if any(not str(d.tag).startswith(_XHTML) for d in divs[0].iter()):
            raise _Unsupported("foreign markup in xhtml content")
        inner = html.escape(divs[0].text or "", quote=False) + "".join(
            etree.tostring(c, encoding=str, with_tail=True) for c in divs[0]
        )
        return inner.strip(), True
    return _text(el), kind == "text/html"


def _atom_link(links: Sequence[Any]) -> str | None:
    href = None
    for link in links:  # the last html alternate wins, as in feedparser
        if link.get("href") is None:
            raise _Unsupported("Atom link without href")
        rel = link.get("rel", "alternate").lower()
        kind = link.get("type", "text/html").lower()
        if rel == "alternate" and _CONTENT_TYPES.get(kind, kind) in ("text/html", "application/xhtml+xml"):
            href = link.get("href", href)
    return href


def _atom_entry(entry: Any) -> RawEntry:
    f = _single(entry, _ATOM_FIELDS, _ATOM_IGNORED)
    authors = entry.findall(f"{_ATOM}author")
    if len(authors) > 1 or (authors and [c.tag for c in authors[0]] not in ([f"{_ATOM}name"], [])):
        raise _Unsupported("several authors, or author details")
    title, title_html = _atom_text(f.get(f"{_ATOM}title"))
    summary, summary_html = _atom_text(f.get(f"{_ATOM}summary"))
    content, content_html = _atom_text(f.get(f"{_ATOM}content"))
    if summary is None:
        summary, summary_html = content, content_html  # feedparser's copy, see _raw_from_feedparser
    guid = _text(f[f"{_ATOM}id"]) if f"{_ATOM}id" in f else None
    return RawEntry(
        guid=guid,
        link=_atom_link(entry.findall(f"{_ATOM}link"))
        or guid,  # an Atom id doubles as link, as in feedparser
        title=title,
        title_is_html=title_html,
        summary=summary,
        summary_is_html=summary_html,
        content=content,
        content_is_html=content_html,
        dates=(_date(f.get(f"{_ATOM}published")), _date(f.get(f"{_ATOM}updated")), None),
        author=_text(authors[0][0]) if authors and len(authors[0]) else None,
    )


def _fast_raw(
    data: bytes, headers: Mapping[str, str]
) -> tuple[str | None, bool, str | None, str | None, list[RawEntry]] | None:
    """(title, title_is_html, link, language, entries) for a plain RSS 2.0 / Atom 1.0 document, else None."""
    if "content-language" in headers or b"xml:base" in data or _C1_REFERENCE.search(data):
        return None
    try:
        root = etree.fromstring(data, _fast_parser())
        if root.tag == "rss" and root.get("version") == "2.0" and len(root) == 1 and root[0].tag == "channel":
            channel = root[0]
            if b"xml:lang" in data or any(len(channel.findall(n)) > 1 for n in ("title", "link", "language")):
                raise _Unsupported("xml:lang, or repeated channel fields")
            for child in channel:
                tag = child.tag
                if not isinstance(tag, str) or (
                    tag.startswith("{")
                    and not tag.startswith(_RSS_CHANNEL_NAMESPACES)
                    and not _is_self_link(child)
                ):
                    raise _Unsupported(f"<{tag}> in the channel")
            title_el, link_el, lang_el = (channel.find(n) for n in ("title", "link", "language"))
            title = _text(title_el) if title_el is not None else None
            link = _text(link_el) if link_el is not None else None
            language = _text(lang_el) if lang_el is not None else None
            return title, False, link, language, [_rss_entry(i) for i in channel.iterfind("item")]
        if root.tag == f"{_ATOM}feed":
            if data.count(b"xml:lang") > (root.get(_XML_LANG) is not None):
                raise _Unsupported("xml:lang below the root")
            if any(c.tag not in _ATOM_FEED_CHILDREN for c in root):
                raise _Unsupported("an unknown element in the Atom feed")
            title, title_html = _atom_text(root.find(f"{_ATOM}title"))
            id_el = root.find(f"{_ATOM}id")
            link = _atom_link(root.findall(f"{_ATOM}link")) or (_text(id_el) if id_el is not None else None)
            return (
                title,
                title_html,
                link,
                root.get(_XML_LANG),
                [_atom_entry(e) for e in root.iterfind(f"{_ATOM}entry")],
            )
    except (etree.XMLSyntaxError, _Unsupported, ValueError):
        return None
    return None
