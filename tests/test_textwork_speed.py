"""The sped-up per-item text work (htmltext.plain_text and its helpers, urls.canonical_url,
normalise.absolute_link) against the frozen pre-speed-up copies in tests/textwork_reference.py.

Item text and canonical URLs are stored and compared across versions, so the fast paths must return exactly
what the old code did, for every input: checked over a generated feed farm end to end, over every entry of
feedparser's test corpus, and over hypothesis-built hostile HTML and URLs aimed at the edges of each fast
path (tags html.parser reads differently, reference boundaries, Unicode spaces, dot segments, IDNA, ports,
tracking parameters, bases urljoin cannot parse).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.textwork_reference as ref
import watcher.dedup as dedup
import watcher.normalise as normalise
import watcher.parse as parse
from watcher import htmltext, urls
from watcher.dedup import item_keys
from watcher.errors import ParseError
from watcher.parse import parse_feed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import farm as farmlib

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "feedparser"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
KINDS = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
LIMITS = [(100_000, False), (1_000, True), (300, True), (40, False), (3, True)]
BASES = [
    None,
    "",
    "https://feeds.example.com/news/feed.xml",
    "http://f.example/a/b/",
    "http://[::1",
    "ftp://x/",
]
FUZZ = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@contextmanager
def reference_code(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """parse_feed and item_keys running the frozen implementations wherever they call the tuned ones."""
    with monkeypatch.context() as m:
        m.setattr(normalise, "plain_text", ref.plain_text)
        m.setattr(normalise, "clean", ref.clean)
        m.setattr(normalise, "absolute_link", ref.absolute_link)
        m.setattr(parse, "absolute_link", ref.absolute_link)
        m.setattr(parse, "clean", ref.clean)
        m.setattr(dedup, "canonical_url", ref.canonical_url)
        yield


def _parse_all(bodies: list[tuple[str, bytes, str]]) -> list[object]:
    out: list[object] = []
    for url, body, ctype in bodies:
        try:
            feed = parse_feed(body, url=url, headers={"content-type": ctype}, now=NOW)
        except ParseError as e:
            out.append(str(e))
            continue
        out.append(feed)
        out.extend(item_keys(item) for item in feed.items)
    return out


def _same_everywhere(monkeypatch: pytest.MonkeyPatch, bodies: list[tuple[str, bytes, str]]) -> int:
    live = _parse_all(bodies)
    with reference_code(monkeypatch):
        frozen = _parse_all(bodies)
    assert live == frozen
    return len(live)


def test_a_generated_farm_parses_to_identical_items_and_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    farm = farmlib.generate(tmp_path, 30, seed=11, base=NOW)
    bodies = [
        (f"https://outlet{s.number}.example/feed", farm.path(s).read_bytes(), KINDS[s.kind])
        for s in farm.feeds
    ]
    assert _same_everywhere(monkeypatch, bodies) > farm.items()


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"feedparser corpus not found at {CORPUS}")
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".json"))


def test_the_feedparser_corpus_parses_to_identical_items_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [
        ("http://corpus.example.com/feeds/feed.xml", p.read_bytes(), "application/xml")
        for p in _corpus_files()
    ]
    assert _same_everywhere(monkeypatch, bodies) > len(bodies)


def _corpus_strings() -> tuple[set[str], set[str]]:
    """Every text and every link of every entry (and feed) of the corpus, as feedparser reads them."""
    texts: set[str] = set()
    links: set[str] = set()
    for path in _corpus_files():
        result = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        for entry in [result.feed, *result.entries]:
            for key in ("summary", "title", "subtitle", "author", "rights"):
                if isinstance(entry.get(key), str):
                    texts.add(entry[key])
            texts.update(c["value"] for c in entry.get("content") or () if isinstance(c.get("value"), str))
            if isinstance(entry.get("link"), str):
                links.add(entry["link"])
            links.update(x["href"] for x in entry.get("links") or () if isinstance(x.get("href"), str))
            if isinstance(entry.get("id"), str):
                links.add(entry["id"])
    return texts, links


def test_every_corpus_text_and_link_gives_identical_output() -> None:
    texts, links = _corpus_strings()
    assert len(texts) > 300 and len(links) > 100
    for text in texts:
        for limit, inline in LIMITS:
            for is_html in (True, False):
                assert htmltext.plain_text(
                    text, is_html=is_html, limit=limit, inline=inline
                ) == ref.plain_text(text, is_html=is_html, limit=limit, inline=inline), (
                    text,
                    limit,
                    inline,
                    is_html,
                )
    for link in links:
        assert urls.canonical_url(link) == ref.canonical_url(link), link
        for base in BASES:
            resolved = normalise.absolute_link(link, base)
            assert resolved == ref.absolute_link(link, base), (link, base)
            if resolved:
                assert urls.canonical_url(resolved) == ref.canonical_url(resolved), resolved


def _assert_same_text(html: str) -> None:
    for limit, inline in LIMITS:
        for is_html in (True, False):
            assert htmltext.plain_text(html, is_html=is_html, limit=limit, inline=inline) == ref.plain_text(
                html, is_html=is_html, limit=limit, inline=inline
            ), (limit, inline, is_html)
    assert htmltext.clean(html) == ref.clean(html)
    assert htmltext.collapse_block(html) == ref.collapse_block(html)
    assert htmltext.collapse_inline(html) == ref.collapse_inline(html)


# --- hostile HTML ---

_SPACES = [" ", "  ", "\n", "\r\n", "\r", "\t", "\x0b", "\x0c", "\xa0", "\u2028", "\u3000", "\x85", "\x1c"]
_ODD = [
    "\x00",
    "\x08",
    "\x9f",
    "\ud800",
    "\udfff",
    "\ufffe",
    "\uffff",
    "\u200b",
    "\ue000",
    ">",
    "/",
    "'",
    '"',
    "=",
]
_ENTITIES = [
    "&amp;", "&amp", "&am", "&", "&lt;", "&lt", "&#38;", "&#x26;", "&#X26", "&#0;", "&#xD800;", "&#1114112;",
    "&#128;", "&#9;", "&#13;", "&nbsp;", "&NotEqualTilde;", "&notit;", "&#", "&#x", "&;", "&AMP;",
]  # fmt: skip
_NAMES = [
    "p", "P", "br", "BR", "div", "b", "a", "span", "td", "TH", "li", "h1", "tr", "script", "Script", "style",
    "textarea", "title", "xmp", "iframe", "noscript", "plaintext", "svg", "o:p", "p1", "x-y", "p\xa0", "font",
]  # fmt: skip
_ATTRS = [
    ' href="x"', " href='y'", " class=c", " hidden", ' a="b>c"', " a='<'", ' a = "v"', " a=b/", " a==b",
    ' a="x"b="y"', "\xa0a=b", " a=", ' a="unterminated', " data-x='1'", " a=`b`", " \tA\n=\r'v'", "/",
    " a=b\xa0c", ' "q"', " a=&amp;", " a=x?y#z",
]  # fmt: skip
_RAW = [
    "<!-- c -->", "<!--", "-->", "<!---->", "<![CDATA[x<y]]>", "<?php x ?>", "<!DOCTYPE html>", "</ p>",
    "</p >", "</>", "<>", "< p>", "<p", "</p", "<script>a<b</script>", "</script>", "<style>p{}</style>",
    "<br/>", "<p/>", "<BR />", "<img src=x/>", "a < b", "a<b", "<3", "<<p>>", "</p/>", "</p x>", "<a\n>",
]  # fmt: skip


@st.composite
def _tags(draw: st.DrawFn) -> str:
    closing = draw(st.sampled_from(["", "/"]))
    name = draw(st.sampled_from(_NAMES))
    attrs = "" if closing else "".join(draw(st.lists(st.sampled_from(_ATTRS), max_size=3)))
    tail = draw(st.sampled_from([">", "/>", " >", "\t/>", "", " /"]))
    return f"<{closing}{name}{attrs}{tail}"


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"), st.sampled_from([c for c in _SPACES + _ODD if len(c) == 1])
    ),
    max_size=12,
)
_HTML_PIECES = st.one_of(
    _TEXT, _tags(), st.sampled_from(_ENTITIES), st.sampled_from(_SPACES), st.sampled_from(_RAW)
)
_HTML = st.lists(_HTML_PIECES, max_size=24).map("".join)


@FUZZ
@given(_HTML)
def test_hostile_html_gives_identical_text(html: str) -> None:
    _assert_same_text(html)


@FUZZ
@given(st.text(max_size=60))
def test_any_text_gives_identical_text(text: str) -> None:
    _assert_same_text(text)


@pytest.mark.parametrize(
    ("size", "limit"),
    [(3, 3), (4, 3), (999, 1_000), (1_000, 1_000), (1_001, 1_000), (65_536, 100_000), (65_537, 100_000), (250_000, 100_000)],
)  # fmt: skip
def test_text_near_the_limits_and_the_parser_chunk_is_identical(size: int, limit: int) -> None:
    """The fast path only takes input the extractor would never cut or feed in two chunks: either side of
    each boundary the output must be the same."""
    unit = "<p>Vučić &amp; <b>FK-3</b></p>\n"
    html = (unit * (size // len(unit) + 1))[:size]
    for inline in (False, True):
        assert htmltext.html_to_text(html, limit=limit, inline=inline) == ref.html_to_text(
            html, limit=limit, inline=inline
        )
    entity_tail = "x" * (size - 5) + "&amp;"
    assert htmltext.html_to_text(entity_tail, limit=limit) == ref.html_to_text(entity_tail, limit=limit)


@pytest.mark.parametrize(
    "html",
    [
        "w<p\xa0class=x>a</p>", "w<p\x0bclass=x>a", "a<br\u2028/>b", 'w<p a="1"\xa0b="2">c', "w<td\xa0>x",
        "w<p a=b\xa0c>d", "w</p\xa0>e", 'w<p a="x"b="y">z', "w<a href=x/>y", "w<p =b>c", "w<p/a>b", "w<p / >c",
        "w<P>x</P>y", "<p>&amp<b>;</b></p>", "a&am<i>p;</i>b", "&#3<b>9;", "<script/>x<p>y", "<style a=b>p</style>q",
        "w<br\x0c>x", "w<br\r\n/>x", "w<br\t>x", "w<p\x00>x", "w<p\u3000a=b>x", "w<td\x85>x", "w<hr\x1c/>x",
    ],
)  # fmt: skip
def test_tags_html_parser_reads_its_own_way_give_identical_text(html: str) -> None:
    _assert_same_text(html)


def test_the_simple_markup_path_takes_typical_feed_html() -> None:
    """The differential tests above prove nothing about speed if the fast path never runs."""
    html = '<p>Vučić <a href="https://x.example/a?b=1&amp;c=2" class=link>said</a> &amp; left.<br/></p>\n<p>Two</p>'
    assert htmltext._simple_markup_text(html) == "\nVučić said & left.\n\n\n\nTwo\n"
    assert htmltext._simple_markup_text("a <!-- b --> c") is None
    assert htmltext._simple_markup_text("<script>x</script>") is None


# --- hostile URLs ---

_SCHEMES = [
    "http://",
    "https://",
    "HTTP://",
    "hTTps://",
    "//",
    "",
    "ftp://",
    "javascript:",
    "http:/",
    "https:",
]
_HOSTS = [
    "example.com", "www.example.com", "WWW.Example.COM", "m.news.example.rs", "amp.example.com", "m.com",
    "example.com.", "a..b", ".example.com", "-x-.example", "xn--vui-rqa.example", "vučić.example", "ex\xa0ample.com",
    "x" * 63 + ".com", "x" * 64 + ".com", "127.0.0.1", "[::1]", "[::1", "[v1.x]", "user@example.com",
    "user:pw@example.com", "example.cdn.ampproject.org", "www.google.com", "google.com", "",
]  # fmt: skip
_PORTS = ["", "", "", ":", ":80", ":443", ":8080", ":99999", ":x", ":0"]
_SEGMENTS = [
    "news", "2024", "amp", "AMP", "story.amp", "story.amp.html", "x.AMP.htm", ".", "..", "", "%2F", "%2e",
    "%41", "%zz", "%", "a;b", ";", "vučić", "čšž", "\xa0", " ", "\ud800", "|", "[x]", "\\", "~user", "a+b",
    "a:b", "@", "!", "'", "(x)", "*", ",", "=", "$", "&", "\u2028", "\x85", "\x7f", "\ufffe", "\u200b",
]  # fmt: skip
_QNAMES = [
    "utm_source",
    "UTM_Medium",
    "fbclid",
    "amp",
    "output",
    "outputtype",
    "ref",
    "id",
    "a",
    "b",
    "",
    "x+y",
    "x%20",
    "č",
]
_QVALUES = ["1", "", "amp", "AMP", "true", "a=b", "č", " ", "%2B", "+", "x&y"]
_FRAGMENTS = ["", "#", "#!", "#!/story/12", "#top", "#č", "#a#b", "#?x", "# x"]
_AROUND = ["", "", " ", "\n", "\t", "\x0b", "\xa0", "\x00", "\u2028", "\r\n"]


@st.composite
def _urls(draw: st.DrawFn) -> str:
    path = "".join("/" + draw(st.sampled_from(_SEGMENTS)) for _ in range(draw(st.integers(0, 4))))
    if draw(st.booleans()):
        path += "/"
    pairs = draw(st.lists(st.tuples(st.sampled_from(_QNAMES), st.sampled_from(_QVALUES)), max_size=4))
    query = "&".join(f"{k}={v}" if v or draw(st.booleans()) else k for k, v in pairs)
    if pairs or draw(st.booleans()):
        query = "?" + query
    url = (
        draw(st.sampled_from(_SCHEMES))
        + draw(st.sampled_from(_HOSTS))
        + draw(st.sampled_from(_PORTS))
        + path
        + query
        + draw(st.sampled_from(_FRAGMENTS))
    )
    return draw(st.sampled_from(_AROUND)) + url + draw(st.sampled_from(_AROUND))


# Near the fast paths' edges: plain shapes with one odd part at a time.
_PLAIN_HOSTS = [
    "example.com",
    "www.Example.com",
    "m.news.example.rs",
    "x" * 64 + ".com",
    "example.cdn.ampproject.org",
    "www.google.com",
]
_PLAIN_SEGMENTS = [
    "news",
    "2024",
    "amp",
    "story.amp",
    "s.AMP.html",
    "vučić",
    "a+b",
    "a:b",
    "~u",
    "(x)",
    "",
    ".",
    "..",
    "c",
    "s",
    "v",
    "pub.example",
]
_PLAIN_QUERY = [
    "a=1",
    "b=",
    "c",
    "=",
    "",
    "a=b=c",
    "utm_source=x",
    "amp=1",
    "amp=no",
    "output=amp",
    "z=2",
    "A=0",
]


@st.composite
def _plainish_urls(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(_PLAIN_SEGMENTS), max_size=5))
    query = "&".join(draw(st.lists(st.sampled_from(_PLAIN_QUERY), max_size=4)))
    url = (
        draw(st.sampled_from(["http://", "https://"]))
        + draw(st.sampled_from(_PLAIN_HOSTS))
        + "".join("/" + s for s in segments)
        + draw(st.sampled_from(["", "?" + query]))
        + draw(st.sampled_from(_FRAGMENTS))
    )
    odd = draw(st.sampled_from(["", "", "", *_SEGMENTS, *_PORTS]))
    at = draw(st.integers(0, len(url)))
    return url[:at] + odd + url[at:]


def _assert_same_url(url: str) -> None:
    assert urls.canonical_url(url) == ref.canonical_url(url)
    for base in BASES:
        resolved = normalise.absolute_link(url, base)
        assert resolved == ref.absolute_link(url, base), base


@FUZZ
@given(_urls())
def test_hostile_urls_give_identical_links_and_canonical_urls(url: str) -> None:
    _assert_same_url(url)


@FUZZ
@given(_plainish_urls())
def test_nearly_plain_urls_give_identical_links_and_canonical_urls(url: str) -> None:
    _assert_same_url(url)


@FUZZ
@given(st.text(max_size=40).map(lambda s: "https://example.com/" + s))
def test_any_path_gives_identical_links_and_canonical_urls(url: str) -> None:
    _assert_same_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://outlet0.example/culture/1930/as-lević-more-report-their-batteries",
        "https://www.example.com/a/b/?utm_source=x&b=2&a=1&amp=1#!/story",
        "http://example.com",
        "https://example.com/amp/story.amp.html?output=amp",
        "https://example.com/a//b/",
        "https://example.com/a/./b",
        "https://example.com/a/" + "x" * 4_000,
        " https://example.com/x \n",
        "https://example.com/x?a=b=c&d=1",
        "https://example-com.cdn.ampproject.org/c/s/example.com/news/1",
        "https://www.google.com/amp/s/example.com/news/1.amp",
    ],
)
def test_typical_links_are_identical(url: str) -> None:
    _assert_same_url(url)


def test_the_fast_paths_take_typical_feed_links() -> None:
    link = "https://www.outlet.example/politics/2024/vučić-said?id=7&utm_source=rss"
    assert urls._plain_canonical(link) == "https://outlet.example/politics/2024/vu%C4%8Di%C4%87-said?id=7"
    assert normalise._PLAIN_ABSOLUTE.fullmatch(link) is not None
    assert urls._plain_canonical("https://example.com/a/../b") is None
