"""Fuzz targets (hypothesis, derandomized so CI is deterministic, bounded example counts).

(a) The feed-to-item path as the pipeline runs it: bytes → parse_feed → Items → dedup.classify,
    match.prepare + TopicIndex.match, fingerprint. Inputs are RSS, Atom and JSON Feed skeletons whose fields
    hold hostile contents (control characters, lone surrogates as raw bytes and as character references,
    absurd dates, entities, CDATA, nested HTML), the same skeletons with random bytes spliced in, and raw
    bytes. The contract: items or ParseError, nothing else; every text field free of NUL and control
    characters; dates absent or plausible (UTC, 1990 .. now + 2 days); ids unique.
(b) The query parser on arbitrary strings: a Query or QuerySyntaxError; every query that parses evaluates
    on arbitrary text (match, explain, TopicIndex) without raising, and the index agrees with match.

tests/test_parse.py and tests/test_query.py fuzz parse_feed and parse_query alone; these follow the data
further, through every stage that sees feed text before it is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher import dedup
from watcher.errors import ParseError, QuerySyntaxError
from watcher.explain import explain
from watcher.fingerprint import band_keys, fingerprint
from watcher.match import match, prepare
from watcher.models import Item
from watcher.parse import parse_feed
from watcher.query import Query, parse_query
from watcher.topicindex import TopicIndex

NOW = datetime(2024, 6, 10, tzinfo=UTC)
URL = "https://feeds.example.com/feed"
FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
QUERIES = [
    parse_query(q)
    for q in [
        "drone*",
        '"air defence" OR FK-3',
        "Serbia AND NOT sport",
        "title:(a OR b*)",
        "x NEAR/2 y",
        "NOT z",
    ]
]
INDEX = TopicIndex([(str(i), q) for i, q in enumerate(QUERIES)])

# --- (a) feeds --------------------------------------------------------------------------------------------

_HOSTILE_PIECES = st.sampled_from(
    [
        "\x00", "\x01", "\x02", "\x03", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\ufffe",
        "&#0;", "&#x1;", "&#xD800;", "&#xDFFF;", "&#x110000;", "&#99999999999;", "&#x1F600;", "&amp;", "&lt;",
        "&gt;", "&nbsp;", "&undefined;", "&amp;lt;script&amp;gt;", "&", "<", "]]>", "<![CDATA[", "<![CDATA[x]]>",
        "<b>", "</b>", "<i><b>nested</i></b>", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
        "<p style='x'>", "<!-- c -->", "<?pi x?>", "<a href='javascript:x()'>l</a>", "Serbia", "drones",
        "FK-3", "Вучић", "x y", " ", "\t", "\n", "\r\n", "a" * 300,
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.lists(st.one_of(_HOSTILE_PIECES, st.text(max_size=12)), max_size=8).map("".join),
    st.text(max_size=60),
)
_DATES = st.one_of(
    st.sampled_from(
        [
            "", "0", "-1", "1e308", "NaN", "Tue, 01 Jan 2999 00:00:00 GMT", "Mon, 01 Jan 1900 00:00:00 GMT",
            "Sun, 31 Dec 1989 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 +0000", "Fri, 07 Jun 2024 25:61:61 GMT",
            "2024-13-45T25:61:61Z", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-12:00",
            "2024-06-09T10:00:00+99:99", "Mon, 10 Jun 2024 08:00:00 +0200", "2024-06-10", "99999-01-01",
            "Wed, 32 Foo 2024 00:00:00 XYZ", "2024-06-10T08:00:00.123456789Z", "1718000000",
        ]
    ),
    st.text(max_size=30),
)  # fmt: skip


def _surrogate_bytes(text: str) -> bytes:
    """UTF-8 with lone surrogates passed through as bytes, as broken encoders produce."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def rss_feed(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        fields = {
            "title": draw(_TEXT),
            "link": draw(st.one_of(_TEXT, st.just("https://news.example/a?utm_source=x#f"))),
            "guid": draw(_TEXT),
            "description": draw(_TEXT),
            "pubDate": draw(_DATES),
            "author": draw(_TEXT),
        }
        kept = draw(st.sets(st.sampled_from(sorted(fields))))
        cdata = draw(st.booleans())
        parts = [
            f"<{k}><![CDATA[{v}]]></{k}>" if cdata and k == "description" else f"<{k}>{v}</{k}>"
            for k, v in fields.items()
            if k in kept
        ]
        items.append("<item>" + "".join(parts) + "</item>")
    encoding = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1251", "utf-16", "bogus"]))
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>{draw(_TEXT)}</title>'
        + "".join(items)
        + "</channel></rss>"
    )
    raw = _surrogate_bytes(doc)
    surrogate = draw(st.sampled_from(["", "\ud800", "\udfff"]))
    return raw.replace(b"Serbia", _surrogate_bytes("Serbia" + surrogate)) if surrogate else raw


@st.composite
def atom_feed(draw: st.DrawFn) -> bytes:
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "html", "xhtml"]))
        body = draw(_TEXT)
        content = f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>' if kind == "xhtml" else body
        entries.append(
            f"<entry><id>{draw(_TEXT)}</id><title type='{kind}'>{draw(_TEXT)}</title>"
            f"<link href='{draw(_TEXT)}'/><updated>{draw(_DATES)}</updated><published>{draw(_DATES)}</published>"
            f"<content type='{kind}'>{content}</content><author><name>{draw(_TEXT)}</name></author></entry>"
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{draw(_TEXT)}</title><id>urn:x</id>" + "".join(entries) + "</feed>"
    )
    return _surrogate_bytes(doc)


_JSON_VALUE = st.one_of(_TEXT, st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(),
                        st.lists(_TEXT, max_size=2), st.dictionaries(_TEXT, _TEXT, max_size=2))  # fmt: skip


@st.composite
def json_feed(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        keys = ["id", "url", "title", "content_html", "content_text", "summary", "date_published",
                "date_modified", "language", "authors", "external_url"]  # fmt: skip
        item = {k: draw(st.one_of(_TEXT, _DATES, _JSON_VALUE)) for k in draw(st.sets(st.sampled_from(keys)))}
        items.append(item)
    feed: object = {"version": "https://jsonfeed.org/version/1.1", "title": draw(_JSON_VALUE), "items": items}
    if draw(st.integers(0, 9)) == 0:
        feed = draw(st.sampled_from([[], None, {"items": {}}, {"items": [1, "x", None]}]))
    text = json.dumps(feed, allow_nan=True, ensure_ascii=draw(st.booleans()))
    # JSON may spell lone surrogates and NULs as escapes, which json.loads turns into real code points.
    text = text.replace("Serbia", draw(st.sampled_from(["Serbia", "Serbia\\ud800", "\\udfffSerbia\\u0000"])))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    base = draw(st.one_of(rss_feed(), atom_feed(), json_feed()))
    at = draw(st.integers(0, len(base)))
    cut = draw(st.integers(0, 40))
    return base[:at] + draw(st.binary(max_size=24)) + base[at + cut :]


_CONTENT_TYPES = st.sampled_from(
    ["application/rss+xml", "application/atom+xml", "application/feed+json", "text/html",
     "text/xml; charset=utf-16", "application/xml; charset=bogus", ""]
)  # fmt: skip


def _clean(text: str | None) -> bool:
    """No control characters, and storable: SQLite takes UTF-8, which has no lone surrogates."""
    if text is None:
        return True
    text.encode("utf-8")
    return not [c for c in text if (ord(c) < 32 and c not in "\t\n") or c == "\x7f"]


def check_path(body: bytes, content_type: str) -> None:
    """Everything the pipeline does with a feed's bytes before storing them."""
    try:
        feed = parse_feed(body, url=URL, headers={"Content-Type": content_type}, now=NOW, max_items=50)
    except ParseError:
        return
    assert _clean(feed.title) and _clean(feed.link) and _clean(feed.warning)
    assert len({i.guid for i in feed.items}) == len(feed.items)
    for item in feed.items:
        check_item(item)


def check_item(item: Item) -> None:
    for value in (item.guid, item.title, item.link, item.summary, item.content, item.author, item.language):
        assert _clean(value), repr(value)
    assert item.guid
    assert item.published is None or (
        item.published.tzinfo is not None
        and datetime(1990, 1, 1, tzinfo=UTC) <= item.published <= NOW + timedelta(days=2)
    ), item.published
    c = dedup.classify(item, None)
    assert c.decision == dedup.Decision.NEW
    assert _clean(c.canonical_url)
    doc = prepare(item.title, item.text)
    expected = {}
    for i, q in enumerate(QUERIES):
        m = match(q, doc)
        if m is not None:
            expected[str(i)] = m
    assert INDEX.match(doc) == expected
    band_keys(fingerprint(item.title, item.text))


@FUZZ
@given(st.one_of(rss_feed(), atom_feed(), json_feed()), _CONTENT_TYPES)
def test_structured_feeds_give_clean_items_or_a_parse_error(body: bytes, content_type: str) -> None:
    check_path(body, content_type)


@FUZZ
@given(spliced(), _CONTENT_TYPES)
def test_damaged_feeds_give_clean_items_or_a_parse_error(body: bytes, content_type: str) -> None:
    check_path(body, content_type)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=3_000), _CONTENT_TYPES)
def test_raw_bytes_give_clean_items_or_a_parse_error(body: bytes, content_type: str) -> None:
    check_path(body, content_type)


# --- (b) queries ------------------------------------------------------------------------------------------

_QUERY_PIECES = st.sampled_from(
    [*"()\"*@:/-'", " ", "AND", "OR", "NOT", "NEAR/1", "NEAR/5", "NEAR/0", "NEAR/99999999999", "title:",
     "text:", "drone", "Serbia", "Србија", "FK-3", "CH92A", "a", "1", "½", "\u0301", "ǅ", "ß", "İ", "\x00",
     "\u200b", "*a", "a**", '""', "(((", ")))"]
)  # fmt: skip
_QUERY_SOURCES = st.one_of(st.text(max_size=50), st.lists(_QUERY_PIECES, max_size=16).map(" ".join),
                           st.lists(_QUERY_PIECES, max_size=16).map("".join))  # fmt: skip
_DOC_TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(["drone", "drones", "Serbia", "Србија", "FK-3", "FK 3", "a", "1", "title", " ", ", ",
                              "\u0301", "ß", "İ", "x" * 50]), max_size=20).map(" ".join),
)  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_QUERY_SOURCES, _DOC_TEXT, _DOC_TEXT)
def test_any_query_string_parses_or_fails_cleanly_and_evaluates_on_any_text(
    source: str, title: str, text: str
) -> None:
    try:
        q = parse_query(source)
    except QuerySyntaxError as e:
        column = e.column
        assert 1 <= column <= len(source) + 1
        return
    assert isinstance(q, Query)
    doc = prepare(title, text)
    m = match(q, doc)
    assert explain(q, doc).matched is (m is not None)
    assert TopicIndex([("q", q)]).match(doc) == ({} if m is None else {"q": m})
    if m is not None:  # the snippet's markers pair up, whatever the text held (MARK_* are stripped from it)
        assert m.snippet.count("\x02") == m.snippet.count("\x03")


def test_references_to_no_character_are_replaced_not_fatal() -> None:
    # Found by the fuzz target above: feedparser's loose parser raised on these instead of reporting bozo.
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>&#xD800;&#99999999999;&#x0000000041;</title>'
        b"<item><title>a&#x110000;b&#128512;</title><guid>1</guid></item></channel></rss>"
    )
    feed = parse_feed(body, url=URL, headers={"Content-Type": "application/rss+xml"}, now=NOW)
    assert feed.title == "\ufffd\ufffdA"
    assert [i.title for i in feed.items] == ["a\ufffdb\U0001f600"]
