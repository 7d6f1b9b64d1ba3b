"""HTML and untrusted strings → bounded plain text.

Everything a feed says reaches users through these functions, so each output string is guaranteed to hold no
C0/C1 control characters (except ``\\n`` and ``\\t``), no lone surrogates and no non-characters: the snippet
markers in :mod:`watcher.models` (``\\x02``/``\\x03``) are control characters precisely because no feed can
smuggle one past :func:`clean`. Lone surrogates are dropped because they cannot be encoded as UTF-8, so
SQLite, SMTP and JSON would all choke on them later.

The HTML converter is the standard library's tolerant tokenizer: it never fetches, never expands anything but
the HTML character references, and its cost is linear. Its input is cut before parsing, so a 100 MB
``<description>`` costs the same as a 1 MB one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

# \x0b and \x0c are whitespace in HTML and in Python's str.split(), so they become spaces rather than vanish.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_VTAB_FF = re.compile("[\x0b\x0c]")
# Tag names that make plain-typed text "really HTML". A generic "<word" test would also eat literal text such
# as "the <feed> element" or "a<b", which feeds legitimately put in plain titles.
_HTML_TAGS = (
    "a abbr acronym address article aside audio b big blockquote body br button center cite code dd "
    "del details dfn div dl dt em embed figcaption figure font footer form h1 h2 h3 h4 h5 h6 head "
    "header hr html i iframe img input ins kbd label li link main mark meta nav noscript object ol "
    "option p picture pre q s samp script section select small source span strike strong style sub "
    "summary sup svg table tbody td template textarea tfoot th thead time title tr tt u ul var "
    "video wbr"
)
_MARKUP = re.compile(
    r"<(?:/?(?:" + "|".join(_HTML_TAGS.split()) + r")(?=[\s/>])|!--)"
    r"|&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});",
    re.IGNORECASE,
)

ELLIPSIS = "…"

# Elements whose boundaries separate words or lines. Inline elements (<b>, <a>, <span>) join their text to the
# neighbours' ("<b>Vu</b>čić" is one word), so only these insert a break.
_BLOCK = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer form h1 h2 h3 h4 h5 "
    "h6 header hr li main nav ol p pre section summary table tbody thead tfoot tr ul".split()
)
_CELL = frozenset({"td", "th"})
# html.parser already treats script/style bodies as raw text (CDATA_CONTENT_ELEMENTS), so skipping them is a
# flag, not a depth counter that an unclosed tag could leave stuck.
_SKIP = frozenset({"script", "style"})
_FEED_CHUNK = 65_536
# The tag shapes on which html.parser (3.11 and the later, stricter releases alike) cannot disagree with a plain
# split: a start tag of ASCII name and attributes, each name=value with a quoted value free of "<" and ">" or a
# bare value of plain characters, separated by ASCII whitespace; or an end tag "</name>". Anything else (a
# comment, a stray "<", "</p >", a Unicode space inside a tag) leaves the fragment to the real parser.
_TAG_WS = "[\t\n\r\f ]"
_SIMPLE_ATTR = (
    rf"{_TAG_WS}+[A-Za-z_:][-A-Za-z0-9_:.]*"
    rf"(?:{_TAG_WS}*={_TAG_WS}*(?:\"[^\"<>]*\"|'[^'<>]*'|[-A-Za-z0-9_.:,;!?#$%&()*+@~]+))?"
)
_SIMPLE_TAG = re.compile(rf"<(/)?([A-Za-z][A-Za-z0-9]*)(?(1)|(?:{_SIMPLE_ATTR})*{_TAG_WS}*/?)>")
# Elements whose content some html.parser release reads as raw text (script and style in 3.11; later releases
# add more): their bodies are not markup, so fragments that use them always take the real parser.
_RAW_TEXT = frozenset(
    "script style textarea title xmp iframe noembed noframes noscript plaintext svg math template".split()
)
_TAG_TEXT = dict.fromkeys(_BLOCK, "\n") | dict.fromkeys(_CELL, " ")
_FEED_LINK_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
    # older or home-made spellings seen on real sites
    | {"application/x-rss+xml", "application/x-atom+xml", "application/rss", "text/rss+xml", "text/atom+xml"}
)
_DISCOVERY_BYTES = 512_000


def clean(s: str) -> str:
    """``s`` without control characters, lone surrogates or non-characters; CR/CRLF become LF."""
    # Every character this changes is a control (Cc), a surrogate (Cs) or a non-character (Cn), none of which
    # str.isprintable() accepts; one C-level pass per line spares the usual case three regex scans.
    if all(map(str.isprintable, s.split("\n"))):
        return s
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _VTAB_FF.sub(" ", s)
    return _CONTROL.sub("", s)


def _is_collapsed(line: str) -> bool:
    """True when ``" ".join(line.split()) == line``, without splitting the line into words.

    The ASCII space is the only whitespace character str.isprintable() accepts, so a printable line is
    already collapsed unless it has two spaces in a row or one at either end.
    """
    return line.isprintable() and "  " not in line and line[:1] != " " and line[-1:] != " "


def collapse_inline(s: str) -> str:
    """All runs of whitespace (line breaks included) become one space: for titles, names, one-liners."""
    return s if _is_collapsed(s) else " ".join(s.split())


def collapse_block(s: str) -> str:
    """Whitespace collapsed within each line; blank lines dropped, so paragraphs are separated by one LF."""
    return _join_lines(list(filter(None, s.split("\n"))), printable=False)


def _join_lines(lines: list[str], *, printable: bool) -> str:
    """collapse_block of these non-empty lines; ``printable`` says every one is known to be printable.
    (_is_collapsed, inlined: this runs for every line of every item.)"""
    out = [
        line
        if (printable or line.isprintable()) and "  " not in line and line[0] != " " and line[-1] != " "
        else " ".join(line.split())
        for line in lines
    ]
    return "\n".join(filter(None, out))


def _clean_collapse_block(s: str) -> str:
    """``collapse_block(clean(s))``, with ``s`` split into lines once when clean() would change nothing."""
    lines = list(filter(None, s.split("\n")))
    if all(map(str.isprintable, lines)):  # the test clean() makes, see there
        return _join_lines(lines, printable=True)
    return collapse_block(clean(s))


def truncate(s: str, limit: int) -> str:
    """``s`` cut to at most ``limit`` characters, ending in an ellipsis when something was cut."""
    if len(s) <= limit:
        return s
    return s[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def looks_like_markup(s: str) -> bool:
    """True when ``s`` holds something tag-like or an entity, i.e. plain-typed text that is really HTML."""
    return _MARKUP.search(s) is not None


class _TextExtractor(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self._skipping: str | None = None

    @property
    def full(self) -> bool:
        return self.size > self.limit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping = tag
        elif tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>: a break but never the start of a skipped region (<script/> has no body).
        if tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._skipping:
            self._skipping = None
        elif tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELL:
            self._emit(" ")

    def handle_data(self, data: str) -> None:
        if self._skipping is None:
            self._emit(data)

    def _emit(self, text: str) -> None:
        if not self.full:
            self.parts.append(text)
            self.size += len(text)


def html_to_text(html: str, *, limit: int, inline: bool = False) -> str:
    """Plain text of an HTML fragment: tags dropped, <script>/<style> bodies dropped, entities decoded,
    block elements turned into line breaks (or spaces when ``inline``), whitespace collapsed, at most
    ``limit`` characters (ellipsis when cut).

    Input beyond ten times the limit is ignored unparsed: markup rarely outweighs its text tenfold, and it
    bounds the work for hostile inputs.
    """
    html = html[: max(limit * 10, 10_000)]
    text = _simple_markup_text(html) if len(html) <= min(limit, _FEED_CHUNK) else None
    if text is None:
        parser = _TextExtractor(limit)
        for start in range(0, len(html), _FEED_CHUNK):
            parser.feed(html[start : start + _FEED_CHUNK])
            if parser.full:
                break
        else:
            parser.close()
        text = "".join(parser.parts)
    text = collapse_inline(clean(text)) if inline else _clean_collapse_block(text)
    return truncate(text, limit)


def _simple_markup_text(html: str) -> str | None:
    """What :class:`_TextExtractor` emits for ``html``, when ``html`` is made only of text and simple tags;
    None for anything else.

    It relies on what html.parser does with such input: one data event per run of text between tags, with
    its character references decoded (``unescape`` per run, never across a tag), and one tag event per tag.
    Callers only pass input of at most ``limit`` characters in one parser chunk: decoding a reference and
    replacing a tag both shorten, so the extractor would never have reached its limit either.
    """
    pieces = _SIMPLE_TAG.split(html)  # text, "/" or None, name, text, ...
    names = [name.lower() for name in pieces[2::3]]
    if html.count("<") != len(names) or not _RAW_TEXT.isdisjoint(names):
        return None  # a "<" that is not a simple tag, or an element whose body is not markup
    texts = pieces[0::3]
    if "&" in html:
        texts = [unescape(t) for t in texts]
    pieces[0::3] = texts
    pieces[1::3] = [_TAG_TEXT.get(name, "") for name in names]
    del pieces[2::3]
    return "".join(pieces)


def plain_text(value: str | None, *, is_html: bool, limit: int, inline: bool = False) -> str:
    """The plain text of a feed field: HTML-typed values, and plain-typed values that evidently hold markup,
    go through :func:`html_to_text`; the rest are only cleaned, collapsed and capped."""
    if not value:
        return ""
    if is_html or (("<" in value or "&" in value) and looks_like_markup(value[: limit * 10])):
        return html_to_text(value, limit=limit, inline=inline)
    value = value[: limit * 2]
    value = collapse_inline(clean(value)) if inline else _clean_collapse_block(value)
    return truncate(value, limit)


# --- feed discovery (for the "got an HTML page" error) ---


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed a page advertises: absolute http(s) URL, media type, and the link's title (may be empty)."""

    url: str
    type: str
    title: str


class _FeedLinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.feeds: list[tuple[str, str, str]] = []  # href, type, title

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and self.base is None and a.get("href"):
            self.base = a["href"]
        elif tag == "link" and a.get("href"):
            rels = a.get("rel", "").lower().split()
            kind = a.get("type", "").split(";", 1)[0].strip().lower()
            if "alternate" in rels and kind in _FEED_LINK_TYPES:
                self.feeds.append((a["href"], kind, a.get("title", "")))

    handle_startendtag = handle_starttag


def discover_feed(html: bytes, url: str) -> str | None:
    """The URL of the first http(s) feed an HTML page advertises with ``<link rel="alternate">``, resolved
    against ``<base href>`` and ``url``. Callers still vet it (normalise.absolute_link): this is a hint."""
    links = feed_links(html, url)
    return links[0].url if links else None


def feed_links(html: bytes, url: str) -> list[FeedLink]:
    """Every http(s) feed an HTML page advertises with ``<link rel="alternate" type="…">``, in page order,
    without repeats, resolved against ``<base href>`` and ``url``."""
    finder = _FeedLinkFinder()
    finder.feed(html[:_DISCOVERY_BYTES].decode("utf-8", "replace"))
    base = urljoin(url, finder.base) if finder.base else url
    out: dict[str, FeedLink] = {}
    for href, kind, title in finder.feeds:
        try:
            link = urljoin(base, href.strip())
            scheme = urlsplit(link).scheme.lower()
        except ValueError:  # e.g. an unclosed IPv6 bracket in a hostile page
            continue
        if scheme in ("http", "https") and link not in out:
            out[link] = FeedLink(url=link, type=kind, title=collapse_inline(clean(title))[:200])
    return list(out.values())
