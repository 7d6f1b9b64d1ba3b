"""parse_feed: fixture feeds against hand-checked expectations, error policy, and hostile inputs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.feedserver import FeedServer
from watcher.errors import ParseError
from watcher.htmltext import discover_feed
from watcher.models import MARK_CLOSE, MARK_OPEN, Item, ParsedFeed
from watcher.parse import parse_feed, rewrite_prolog

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
NOW = datetime(2024, 6, 10, tzinfo=UTC)
URL = "https://feeds.example.com/x/feed"
XML = {"Content-Type": "application/xml"}


def parse(body: bytes, headers: dict[str, str] | None = None, **kw: int) -> ParsedFeed:
    return parse_feed(body, url=URL, headers=XML if headers is None else headers, now=NOW, **kw)


def rss(items: str, channel: str = "<title>T</title>", prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}'
        f'<rss version="2.0"><channel>{channel}{items}</channel></rss>'
    ).encode()


def as_dict(feed: ParsedFeed) -> dict[str, object]:
    return {
        "title": feed.title,
        "link": feed.link,
        "language": feed.language,
        "warning": feed.warning,
        "parser": feed.parser,
        "items": [
            {
                "guid": i.guid,
                "id_source": i.id_source,
                "title": i.title,
                "link": i.link,
                "published": i.published.isoformat() if i.published else None,
                "summary": i.summary,
                "content": i.content,
                "author": i.author,
                "language": i.language,
            }
            for i in feed.items
        ],
    }


def all_text(feed: ParsedFeed) -> str:
    fields: list[str | None] = [feed.title, feed.link, feed.language, feed.warning]
    for i in feed.items:
        fields += [i.guid, i.title, i.link, i.summary, i.content, i.author, i.language]
    return "\n".join(f for f in fields if f)


# --- fixture feeds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rss2.xml", "atom.xml", "rdf.xml", "feed.json"])
def test_fixture_feed_matches_expected(name: str) -> None:
    path = FEEDS / name
    content_type = "application/json" if name.endswith(".json") else "application/xml"
    feed = parse(path.read_bytes(), {"Content-Type": content_type})
    expected = json.loads((FEEDS / f"{path.stem}.expected.json").read_text(encoding="utf-8"))
    assert as_dict(feed) == expected


@pytest.mark.parametrize("name", ["rss2.xml", "atom.xml", "rdf.xml"])
def test_fast_path_and_feedparser_agree_on_fixtures(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    fast = parse(body)
    slow = parse_feed(body, url=URL, headers=XML, now=NOW, fast_path=False)
    assert slow.parser == "feedparser"
    assert (fast.title, fast.link, fast.language, fast.items) == (
        slow.title,
        slow.link,
        slow.language,
        slow.items,
    )


def test_fast_path_declines_what_it_does_not_mirror() -> None:
    plain = rss("<item><title>a</title><guid>1</guid></item>")
    assert parse(plain).parser == "fast"
    assert parse(plain, {"Content-Type": "text/plain"}).parser == "feedparser"  # feedparser's bozo warning
    media = plain.replace(b"<guid>1</guid>", b"<m:title xmlns:m='http://search.yahoo.com/mrss/'>t</m:title>")
    assert parse(media).parser == "feedparser"
    assert parse(plain.replace(b"<guid>", b"<guid xml:lang='fr'>")).parser == "feedparser"
    assert parse(plain.replace(b"</title>", b"</title><author>a@b.c (A)</author>")).parser == "feedparser"


def test_json_feed_is_recognised_without_a_json_content_type() -> None:
    feed = parse((FEEDS / "feed.json").read_bytes(), {"Content-Type": "text/plain"})
    assert feed.parser == "json"
    assert [i.guid for i in feed.items][:2] == ["2", "1"]


def test_header_names_are_case_insensitive_and_charset_is_honoured() -> None:
    body = rss("<item><title>“quoted” £</title><guid>g</guid></item>").decode().encode("cp1252")
    feed = parse(body, {"CONTENT-TYPE": "text/xml; charset=windows-1252"})
    assert feed.items[0].title == "“quoted” £"


# --- errors and the bozo policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \n\t "])
def test_empty_body_is_an_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty body") as info:
        parse(body)
    assert info.value.url == URL


def test_html_page_without_feed_link() -> None:
    page = b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>hi</p></body></html>"
    with pytest.raises(ParseError) as info:
        parse(page, {"Content-Type": "text/html; charset=utf-8"})
    assert info.value.detail == "not a feed: got an HTML page"


@pytest.mark.parametrize(
    ("head", "advertised"),
    [
        (
            '<link rel="alternate" type="application/rss+xml" href="/rss.xml">',
            "https://feeds.example.com/rss.xml",
        ),
        (
            '<link rel="Alternate home" type="application/atom+xml" href="atom">',
            "https://feeds.example.com/x/atom",
        ),
        (
            '<base href="https://cdn.example.net/b/">'
            '<link rel=alternate type="application/rss+xml" href="f.xml">',
            "https://cdn.example.net/b/f.xml",
        ),
        (
            '<link rel="stylesheet" href="s.css">'
            '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
            '<link rel="alternate" type="application/atom+xml" href="//h.example/a">',
            "https://h.example/a",
        ),
    ],
)
def test_html_page_names_the_feed_it_advertises(head: str, advertised: str) -> None:
    page = f"<html><head>{head}</head><body>x</body></html>".encode()
    with pytest.raises(ParseError) as info:
        parse(page, {"Content-Type": "text/html"})
    assert info.value.detail == f"not a feed: got an HTML page; the page advertises a feed at {advertised}"


def test_html_is_detected_by_root_element_even_when_served_as_xml() -> None:
    page = b"<?xml version='1.0'?>\n<!-- x -->\n<HTML><body>hello</body></HTML>"
    with pytest.raises(ParseError, match="got an HTML page"):
        parse(page, {"Content-Type": "application/rss+xml"})


def test_feed_served_as_text_html_is_still_a_feed() -> None:
    feed = parse(rss("<item><title>A</title><guid>a</guid></item>"), {"Content-Type": "text/html"})
    assert [i.title for i in feed.items] == ["A"]


def test_xhtml_doctype_before_an_rss_root_is_not_html() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        b'"http://site.invalid/">\n<rss><channel><title>found</title></channel></rss>'
    )
    assert parse(body).title == "found"


def test_bozo_feed_with_entries_is_accepted_with_a_warning() -> None:
    body = rss("<item><title>Fish & chips</title><guid>1</guid></item><item><title>B</title></item>")
    feed = parse(body)
    assert [i.title for i in feed.items] == ["Fish & chips", "B"]
    assert feed.warning is not None
    assert "malformed XML at line" in feed.warning


def test_bozo_document_without_entries_or_title_is_an_error() -> None:
    with pytest.raises(ParseError, match=r"^.*: not a feed: malformed XML at line \d+"):
        parse(b"<rss><channel><link>x</link><oops></rss")


def test_bozo_feed_with_only_a_title_is_accepted() -> None:
    feed = parse(b"<rss><channel><title>Just a title</title><oops></channel></rss>")
    assert feed.title == "Just a title"
    assert feed.items == ()
    assert feed.warning


def test_valid_feed_with_zero_entries_is_fine() -> None:
    feed = parse(
        rss("", channel="<title>Quiet</title><link>https://q.example/</link><language>EN-us</language>")
    )
    assert (feed.title, feed.link, feed.language, feed.items, feed.warning) == (
        "Quiet",
        "https://q.example/",
        "en-us",
        (),
        None,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<?xml version='1.0'?><catalog><book>x</book></catalog>", "<catalog> is not an RSS, Atom or RDF"),
        (b"just some text, no markup at all", "no XML element found"),
        (b"<?xml version='1.0'?><!-- unterminated", "no XML element found"),
        (b"<!DOCTYPE rss [ <!ENTITY a 'x'> <rss><channel><title>t</title>", "no XML element found"),
    ],
)
def test_non_feed_documents_are_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match="not a feed") as info:
        parse(body)
    assert message in info.value.detail


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "invalid JSON"),
        (b'{"data": [1, 2, 3]}', "not a JSON Feed"),
        (b"[1, 2]", "not a JSON Feed"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1", "title": "\xff\xfe"}', "invalid JSON"),
    ],
)
def test_bad_json_is_a_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body, {"Content-Type": "application/feed+json"})


def test_json_feed_without_items_list_is_empty_with_warning() -> None:
    feed = parse(b'{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": {"a": 1}}')
    assert (feed.title, feed.items, feed.warning) == ("T", (), 'no "items" list')


# --- item limits and identity ------------------------------------------------------------------------------


def test_max_items_keeps_the_first_entries_and_says_so() -> None:
    body = rss("".join(f"<item><title>n{n}</title><guid>g{n}</guid></item>" for n in range(5)))
    feed = parse(body, max_items=2)
    assert [i.guid for i in feed.items] == ["g0", "g1"]
    assert feed.warning == "kept the first 2 of 5 entries"


def test_repeated_guid_with_different_links_does_not_hide_items() -> None:
    items = "".join(
        f"<item><title>{t}</title><link>https://s.example/{p}</link>"
        "<guid isPermaLink='false'>same</guid></item>"
        for t, p in [("A", "a"), ("B", "b"), ("A again", "a")]
    )
    items += (
        "<item><title>C</title><link>https://s.example/c</link><guid isPermaLink='false'>other</guid></item>"
    )
    feed = parse(rss(items))
    assert [(i.guid, i.title) for i in feed.items] == [
        ("same#https://s.example/a", "A"),
        ("same#https://s.example/b", "B"),
        ("other", "C"),
    ]


def test_relative_guid_is_kept_verbatim_while_links_resolve() -> None:
    feed = parse(rss("<item><title>x</title><link>../a/1</link><guid>post-1</guid></item>"))
    assert (feed.items[0].guid, feed.items[0].link) == ("post-1", "https://feeds.example.com/a/1")


def test_atom_xml_base_and_feed_url_both_apply() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="sub/"><title>t</title>
      <entry><id>e1</id><title>x</title><link href="page"/></entry></feed>"""
    assert parse(body).items[0].link == "https://feeds.example.com/x/sub/page"


# --- hostile feeds -----------------------------------------------------------------------------------------

BILLION_LAUGHS = (FEEDS / "billion-laughs.xml").read_bytes()


def quadratic_blowup(n: int) -> bytes:
    """One n-character entity referenced n times: n² characters if anything expands it."""
    return rss(
        f"<item><title>q</title><guid>q</guid><description>{'&a;' * n}</description></item>",
        prolog=f'<!DOCTYPE rss [\n<!ENTITY a "{"A" * n}">\n]>\n',
    )


def test_naive_feedparser_really_expands_the_quadratic_feed() -> None:
    """The threat is real (so the tests below can fail): plain feedparser builds n² characters."""
    raw = feedparser.parse(io.BytesIO(quadratic_blowup(300)))
    assert len(raw.entries[0].summary) == 300 * 300


def test_quadratic_blowup_is_not_expanded() -> None:
    feed = parse(quadratic_blowup(40_000))  # 1.6 GB of text if expanded
    assert "AAAA" not in all_text(feed)
    assert len(feed.items[0].summary) <= 3 * 40_000


def test_billion_laughs_is_not_expanded() -> None:
    feed = parse(BILLION_LAUGHS)
    assert "lollol" not in all_text(feed)
    assert len(all_text(feed)) < 1_000


def test_entities_smuggled_in_a_prolog_comment_are_not_expanded() -> None:
    body = rss(
        "<item><title>x</title><guid>1</guid><description>&a;&a;</description></item>",
        prolog='<!--\n<!DOCTYPE rss [\n<!ENTITY a "SMUGGLED">\n]>\n-->\n',
    )
    assert "SMUGGLED" in feedparser.parse(io.BytesIO(body)).entries[0].summary  # the threat is real
    assert "SMUGGLED" not in all_text(parse(body))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_bodies_are_decoded_and_defused(encoding: str) -> None:
    text = quadratic_blowup(2_000).decode().replace('encoding="utf-8"', f'encoding="{encoding[:6]}"')
    text = text.replace("<title>q</title>", "<title>Ćao ћирилица</title>")
    feed = parse(text.encode(encoding))
    assert feed.items[0].title == "Ćao ћирилица"
    assert "AAAA" not in all_text(feed)


def test_xxe_file_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711", encoding="utf-8")
    uri = secret.as_uri()
    body = rss(
        "<item><title>&xxe;</title><guid>1</guid><description>before &xxe; after</description></item>",
        prolog=f'<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{uri}">\n<!ENTITY % p SYSTEM "{uri}">\n%p;\n]>\n',
    )
    feed = parse(body)
    assert "TOP-SECRET" not in all_text(feed)
    assert feed.items[0].summary == "before &xxe; after"


def test_xxe_http_entity_and_external_dtd_are_never_fetched(feed_server: FeedServer) -> None:
    feed_server.serve("/dtd", b'<!ENTITY e "FETCHED">', content_type="application/xml-dtd")
    dtd = feed_server.url("/dtd")
    body = rss(
        "<item><title>&e;</title><guid>1</guid></item>",
        prolog=f'<!DOCTYPE rss SYSTEM "{dtd}" [\n<!ENTITY e SYSTEM "{dtd}">\n]>\n',
    )
    feed = parse(body)
    assert "FETCHED" not in all_text(feed)
    assert feed_server.requests() == []


def test_control_characters_never_survive() -> None:
    body = rss(
        "<item><title>a\x00b\x02c\x03d&#2;e\x1bf</title><guid>g\x02</guid>"
        "<description>x\x03y&#3;z\x7f\x85\ttab\r\nline</description><author>\x02Ana</author></item>"
    )
    feed = parse(body)
    text = all_text(feed)
    assert MARK_OPEN not in text
    assert MARK_CLOSE not in text
    assert not [c for c in text if ord(c) < 32 and c not in "\t\n"]
    assert feed.items[0].guid == "g"


def test_scripts_in_titles_and_summaries_become_harmless_text() -> None:
    body = rss(
        "<item><title>&lt;script&gt;alert(1)&lt;/script&gt;Hi</title><guid>1</guid>"
        "<description><![CDATA[<p onclick='x()'>Text<script>steal()</script>"
        "<style>b{}</style></p>]]></description>"
        "</item>"
    )
    item = parse(body).items[0]
    assert (item.title, item.summary) == ("Hi", "Text")


def test_huge_title_and_summary_are_capped() -> None:
    body = rss(
        f"<item><title>{'word ' * 200_000}</title><guid>1</guid>"
        f"<description>{'x' * 300_000}</description></item>"
    )
    item: Item = parse(body).items[0]
    assert len(item.title) == 1_000
    assert item.title.endswith("…")
    assert len(item.summary) == 100_000


# --- the prolog rewriter ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "root", "kept"),
    [
        (b"<rss/>", "rss", b"<rss/>"),
        (b"\n\n<?xml version='1.0'?>\n<?xml-stylesheet href='x'?>\n<feed/>", "feed", b"<feed/>"),
        (b'<!DOCTYPE x [ <!ENTITY a "]>"> <!-- ]> --> ]><rdf:RDF/>', "rdf:RDF", b"<rdf:RDF/>"),
        (b"<!DOCTYPE x SYSTEM 'a>b'><rss/>", "rss", b"<rss/>"),
        (b"junk < 3 <!ENTITY a 'b'> <rss>", "rss", b"<rss>"),
        (b"<!-- <rss> -->", None, b""),
        (b"<!DOCTYPE x [ <!ENTITY a 'never closed", None, b""),
    ],
)
def test_rewrite_prolog(data: bytes, root: str | None, kept: bytes) -> None:
    out, found = rewrite_prolog(data)
    assert found == root
    assert out.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n')
    assert out.endswith(kept)
    assert b"ENTITY" not in out
    assert out.count(b"\n") >= data[: len(data) - len(kept)].count(b"\n")


def test_discover_feed_ignores_non_feed_links() -> None:
    page = b'<link rel="alternate" type="text/html" href="/fr/"><link rel="icon" href="/i.png">'
    assert discover_feed(page, URL) is None


# --- arbitrary input ---

FIXTURE_BYTES = [(FEEDS / n).read_bytes() for n in ("rss2.xml", "atom.xml", "rdf.xml", "feed.json")]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2_000),
        st.tuples(
            st.sampled_from(FIXTURE_BYTES),
            st.integers(0, 3_000),
            st.integers(0, 3_000),
            st.binary(max_size=40),
        ).map(lambda t: t[0][: t[1]] + t[3] + t[0][t[2] :]),
    ),
    st.sampled_from(["application/xml", "text/html", "application/json", "text/plain; charset=utf-16", ""]),
)
def test_any_bytes_give_a_feed_or_a_parse_error(body: bytes, content_type: str) -> None:
    try:
        feed = parse(body, {"Content-Type": content_type})
    except ParseError:
        return
    text = all_text(feed)
    assert not [c for c in text if ord(c) < 32 and c not in "\t\n"]
    assert len({i.guid for i in feed.items}) == len(feed.items)
