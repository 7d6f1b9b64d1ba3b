"""normalise and htmltext: table-driven cases for each rule, plus property tests for the text guarantees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.htmltext import clean, html_to_text, looks_like_markup, plain_text, truncate
from watcher.models import MARK_CLOSE, MARK_OPEN
from watcher.normalise import (
    RawEntry,
    absolute_link,
    normalise_entries,
    normalise_language,
    parse_rfc3339,
    plausible_date,
    raw_entry_from_json,
)

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
BASE = "https://news.example.rs/rss/feed.xml"


def items(*raws: RawEntry, base: str | None = BASE, language: str | None = None) -> list[tuple[str, str]]:
    return [
        (i.guid, i.id_source) for i in normalise_entries(raws, base_url=base, feed_language=language, now=NOW)
    ]


# --- htmltext -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Prvi</p><p>Drugi</p>", "Prvi\nDrugi"),
        ("<b>Vu</b>čić", "Vučić"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("x<script>alert('<p>')</script>y", "xy"),
        ("x<style>p { x: y }</style>y", "xy"),
        ("x<script>never closed <b>bold</b>", "x"),
        ("AT&amp;T &lt;tag&gt; &#269;&#x107; &nbsp;nb&eacute;", "AT&T <tag> čć nbé"),
        ("  lots \n\n of\t\tspace  ", "lots\nof space"),
        ("<p onclick='evil()'>click</p><img src=x onerror=alert(1)>", "click"),
        ("<![CDATA[x]]>text<!-- comment -->", "text"),
        ("Вучић <i>у</i> Бриселу", "Вучић у Бриселу"),
        ("a < b and c > d", "a < b and c > d"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html, limit=1000) == text


def test_html_to_text_inline_joins_blocks_with_spaces() -> None:
    assert html_to_text("<h1>Title</h1><p>sub</p>", limit=100, inline=True) == "Title sub"


def test_html_to_text_caps_output_and_ignores_far_input() -> None:
    out = html_to_text("<p>" + "word " * 1_000_000 + "</p><p>TAIL</p>", limit=50)
    assert len(out) == 50
    assert out.endswith("…")
    assert "TAIL" not in out


@pytest.mark.parametrize(
    ("value", "markup"),
    [
        ("<script>alert(1)</script>Hi", True),
        ("<P>para", True),
        ("x <br/> y", True),
        ("AT&amp;T", True),
        ("&#2;", True),
        ("The <feed> element", False),
        ("a<b", False),
        ("Tom & Jerry", False),
        ("x<bold", False),
    ],
)
def test_looks_like_markup(value: str, markup: bool) -> None:
    assert looks_like_markup(value) is markup


@pytest.mark.parametrize(
    ("value", "is_html", "text"),
    [
        ("The <feed> element & you", False, "The <feed> element & you"),
        ("The <feed> element &amp; you", True, "The element & you"),
        ("<script>alert(1)</script>Hi", False, "Hi"),
        ("line\none", False, "line one"),
        (None, True, ""),
    ],
)
def test_plain_text_title(value: str | None, is_html: bool, text: str) -> None:
    assert plain_text(value, is_html=is_html, limit=100, inline=True) == text


def test_clean_removes_controls_surrogates_and_noncharacters() -> None:
    assert clean("a\x00b\x02c\x03d\x1be\x7ff\x85g\ud800h\ufffei\tj\r\nk\rl\x0cm") == "abcdefghi\tj\nk\nl m"


@pytest.mark.parametrize(("s", "limit", "out"), [("abc", 3, "abc"), ("abcd", 3, "ab…"), ("ab  cd", 4, "ab…")])
def test_truncate(s: str, limit: int, out: str) -> None:
    assert truncate(s, limit) == out


@settings(max_examples=300, deadline=None)
@given(st.text(), st.booleans(), st.booleans())
def test_plain_text_never_emits_control_characters(value: str, is_html: bool, inline: bool) -> None:
    out = plain_text(value, is_html=is_html, limit=200, inline=inline)
    assert MARK_OPEN not in out
    assert MARK_CLOSE not in out
    assert all(ord(c) >= 32 or c in ("\n" if not inline else "") for c in out)
    assert len(out) <= 200
    out.encode("utf-8")  # no lone surrogates


# --- languages, links, dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "out"),
    [
        ("sr-Latn", "sr-latn"),
        ("en_US", "en-us"),
        (" DE ", "de"),
        ("sr-Cyrl-RS", "sr-cyrl-rs"),
        ("english", None),
        ("e", None),
        ("en-", None),
        ("", None),
        (None, None),
        ("x\x02y", "xy"),
    ],
)
def test_normalise_language(tag: str | None, out: str | None) -> None:
    assert normalise_language(tag) == out


@pytest.mark.parametrize(
    ("link", "out"),
    [
        ("/a/b?x=1#frag", "https://news.example.rs/a/b?x=1#frag"),
        ("item/7", "https://news.example.rs/rss/item/7"),
        ("//cdn.example.com/x", "https://cdn.example.com/x"),
        ("HTTP://Example.com/Path", "HTTP://Example.com/Path"),
        ("  https://example.com/\n   long/path  ", "https://example.com/long/path"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("data:text/html,<script>", None),
        ("file:///etc/passwd", None),
        ("mailto:a@b.c", None),
        ("http://[::1", None),
        ("https://", None),
        ("", None),
        (None, None),
        ("https://example.com/" + "a" * 5_000, None),
    ],
)
def test_absolute_link(link: str | None, out: str | None) -> None:
    assert absolute_link(link, BASE) == out


def test_absolute_link_without_base_keeps_only_absolute_urls() -> None:
    assert absolute_link("/a", None) is None
    assert absolute_link("https://x.example/a", None) == "https://x.example/a"


@pytest.mark.parametrize(
    ("value", "out"),
    [
        (datetime(2024, 6, 1, 10, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 6, 1, 8, tzinfo=UTC)),
        (datetime(2024, 6, 1, 10), datetime(2024, 6, 1, 10, tzinfo=UTC)),
        (NOW + timedelta(days=1, hours=23), NOW + timedelta(days=1, hours=23)),
        (NOW + timedelta(days=2, seconds=1), None),
        (datetime(1989, 12, 31, 23, 59, tzinfo=UTC), None),
        (datetime(1990, 1, 1, tzinfo=UTC), datetime(1990, 1, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_plausible_date(value: datetime | None, out: datetime | None) -> None:
    result = plausible_date(value, NOW)
    assert result == out
    assert result is None or result.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "out"),
    [
        ("2024-06-02T10:00:00-03:00", datetime(2024, 6, 2, 13, tzinfo=UTC)),
        ("2024-06-02T10:00:00Z", datetime(2024, 6, 2, 10, tzinfo=UTC)),
        ("2024-06-02", datetime(2024, 6, 2, tzinfo=UTC)),
        ("yesterday", None),
        (20240602, None),
        ("9" * 100, None),
    ],
)
def test_parse_rfc3339(value: object, out: datetime | None) -> None:
    assert parse_rfc3339(value) == out


def test_first_plausible_date_wins() -> None:
    raw = RawEntry(guid="g", dates=(datetime(1970, 1, 1, tzinfo=UTC), None, datetime(2024, 5, 1, tzinfo=UTC)))
    [item] = normalise_entries([raw], base_url=BASE, feed_language=None, now=NOW)
    assert item.published == datetime(2024, 5, 1, tzinfo=UTC)


# --- identity --------------------------------------------------------------------------------------------


def test_id_chain_guid_then_link_then_hash() -> None:
    got = items(
        RawEntry(guid="  g-1 ", link="/a"),
        RawEntry(guid="", link="/b"),
        RawEntry(title="t", summary="s"),
    )
    assert got[0] == ("g-1", "guid")
    assert got[1] == ("https://news.example.rs/b", "link")
    assert got[2][1] == "hash"
    assert got[2][0].startswith("sha256:")


def test_hash_id_is_stable_and_depends_on_title_date_and_summary() -> None:
    base = RawEntry(title="t", summary="s", dates=(datetime(2024, 1, 1, tzinfo=UTC),))
    same = items(base)[0][0]
    assert items(RawEntry(title="t", summary="s", dates=(datetime(2024, 1, 1, tzinfo=UTC),)))[0][0] == same
    assert items(RawEntry(title="t2", summary="s", dates=(datetime(2024, 1, 1, tzinfo=UTC),)))[0][0] != same
    assert items(RawEntry(title="t", summary="s2", dates=(datetime(2024, 1, 1, tzinfo=UTC),)))[0][0] != same
    assert items(RawEntry(title="t", summary="s", dates=(datetime(2024, 1, 2, tzinfo=UTC),)))[0][0] != same


def test_repeated_guid_with_different_links_gets_link_suffix() -> None:
    got = items(
        RawEntry(guid="x", link="/1", title="a"),
        RawEntry(guid="y", link="/9"),
        RawEntry(guid="x", link="/2", title="b"),
        RawEntry(guid="x", title="no link"),
    )
    assert got[0] == ("x#https://news.example.rs/1", "guid")
    assert got[1] == ("y", "guid")
    assert got[2] == ("x#https://news.example.rs/2", "guid")
    assert got[3][0].startswith("x#sha256:")


def test_true_duplicates_keep_the_first() -> None:
    raws = [RawEntry(guid="x", link="/1", title="first"), RawEntry(guid="x", link="/1", title="second")]
    out = normalise_entries(raws, base_url=BASE, feed_language=None, now=NOW)
    assert [i.title for i in out] == ["first"]


def test_overlong_guid_is_hashed() -> None:
    [(guid, source)] = items(RawEntry(guid="g" * 5_000))
    assert (len(guid), source) == (len("sha256:") + 64, "guid")


def test_language_falls_back_to_feed_language() -> None:
    out = normalise_entries(
        [RawEntry(guid="a", language="FR"), RawEntry(guid="b"), RawEntry(guid="c", language="bogus tag")],
        base_url=BASE,
        feed_language="sr-latn",
        now=NOW,
    )
    assert [i.language for i in out] == ["fr", "sr-latn", "sr-latn"]


def test_content_equal_to_summary_is_not_repeated() -> None:
    [item] = normalise_entries(
        [RawEntry(guid="a", summary="<p>Same text</p>", content="Same  text")],
        base_url=BASE,
        feed_language=None,
        now=NOW,
    )
    assert (item.summary, item.content, item.text) == ("Same text", "", "Same text")


# --- JSON Feed items ----------------------------------------------------------------------------------------


def test_raw_entry_from_json_tolerates_wrong_types() -> None:
    raw = raw_entry_from_json(
        {"id": ["not", "a", "string"], "url": 5, "title": {"x": 1}, "authors": "me", "date_published": 7}
    )
    assert raw == RawEntry(
        guid=None, link="5", title=None, summary_is_html=False, content_is_html=False, dates=(None, None)
    )


def test_raw_entry_from_json_prefers_html_content_and_first_named_author() -> None:
    raw = raw_entry_from_json(
        {
            "id": 7,
            "content_html": "<b>x</b>",
            "content_text": "x",
            "authors": [{"url": "u"}, {"name": "Second"}],
            "author": {"name": "Legacy"},
        }
    )
    assert (raw.guid, raw.content, raw.content_is_html, raw.author) == ("7", "<b>x</b>", True, "Second")
