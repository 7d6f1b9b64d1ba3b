from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.urls import canonical_url, url_host

CASES = [
    # scheme, case, default ports
    ("HTTP://Example.COM/News/Story", "https://example.com/News/Story"),
    ("https://example.com/a", "https://example.com/a"),
    ("http://example.com:80/a", "https://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:8080/a", "https://example.com:8080/a"),
    ("https://user:secret@example.com/a", "https://example.com/a"),
    # host prefixes
    ("https://www.example.com/a", "https://example.com/a"),
    ("https://m.example.com/a", "https://example.com/a"),
    ("https://amp.example.com/a", "https://example.com/a"),
    ("https://www.m.example.com/a", "https://example.com/a"),
    ("https://m.com/a", "https://m.com/a"),
    ("https://www.co/a", "https://www.co/a"),
    ("https://example.com./a", "https://example.com/a"),
    # trailing slash, fragments, empty path, duplicate slashes, dot segments
    ("https://example.com/a/", "https://example.com/a"),
    ("https://example.com/", "https://example.com"),
    ("https://example.com", "https://example.com"),
    ("https://example.com/a#comments", "https://example.com/a"),
    ("https://example.com/#!/story/12", "https://example.com#!/story/12"),
    ("https://example.com//a///b", "https://example.com/a/b"),
    ("https://example.com/a/./b/../c", "https://example.com/a/c"),
    # query: order, tracking parameters kept apart from content parameters
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?utm_source=x&utm_medium=y&UTM_Campaign=z", "https://example.com/a"),
    ("https://example.com/a?id=7&fbclid=IwAR0&gclid=1&dclid=2&msclkid=3", "https://example.com/a?id=7"),
    ("https://example.com/a?mc_cid=1&mc_eid=2&ref=tw&ref_src=twsrc", "https://example.com/a"),
    ("https://example.com/a?igshid=1&_ga=2&yclid=3&spm=4&cmpid=5&ito=6", "https://example.com/a"),
    ("https://example.com/a?page=2&utm_content=x", "https://example.com/a?page=2"),
    ("https://example.com/a?from=2024&src=rss", "https://example.com/a?from=2024&src=rss"),
    ("https://example.com/a?q=a+b", "https://example.com/a?q=a+b"),
    ("https://example.com/a?q=a%20b", "https://example.com/a?q=a+b"),
    ("https://example.com/a?flag", "https://example.com/a?flag="),
    # AMP variants fold to the article
    ("https://example.com/news/story/amp", "https://example.com/news/story"),
    ("https://example.com/amp/news/story", "https://example.com/news/story"),
    ("https://example.com/news/story/amp/", "https://example.com/news/story"),
    ("https://example.com/news/story.amp", "https://example.com/news/story"),
    ("https://example.com/news/story.amp.html", "https://example.com/news/story.html"),
    ("https://example.com/news/story?amp=1", "https://example.com/news/story"),
    ("https://example.com/news/story?amp", "https://example.com/news/story"),
    ("https://example.com/news/story?outputType=amp", "https://example.com/news/story"),
    ("https://example.com/news/story?amp=2", "https://example.com/news/story?amp=2"),
    ("https://example.com/news/amplifier", "https://example.com/news/amplifier"),
    (
        "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/story/amp",
        "https://example.com/news/story",
    ),
    ("https://www.google.com/amp/s/m.example.com/news/story.amp", "https://example.com/news/story"),
    # percent-encoding and IDN
    ("https://example.com/%7Efoo/%c3%a9", "https://example.com/~foo/%C3%A9"),
    ("https://example.com/café", "https://example.com/caf%C3%A9"),
    ("https://example.com/a%2Fb", "https://example.com/a%2Fb"),
    ("https://example.com/a b", "https://example.com/a%20b"),
    ("https://Пример.СРБ/вести", "https://xn--e1afmkfd.xn--90a3ac/%D0%B2%D0%B5%D1%81%D1%82%D0%B8"),
    ("https://www.münchen.de/x", "https://xn--mnchen-3ya.de/x"),
    ("https://[2001:db8::1]:8443/x/", "https://[2001:db8::1]:8443/x"),
    # scheme-less input as people paste it
    ("www.example.com/a/", "https://example.com/a"),
    ("//example.com/a", "https://example.com/a"),
    ("  https://example.com/a  ", "https://example.com/a"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_canonical_url(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_canonical_url_is_idempotent(raw: str, expected: str) -> None:
    assert canonical_url(expected) == expected


GARBAGE = [
    ("", ""),
    ("   ", ""),
    ("not a url", "not a url"),
    ("http://[::1", "http://[::1"),
    ("http://example.com:abc/x", "http://example.com:abc/x"),
    ("javascript:alert(1)", "javascript:alert(1)"),
    ("mailto:news@example.com", "mailto:news@example.com"),
    ("/relative/path?x=1", "/relative/path?x=1"),
    ("http://", "http://"),
    ("https://\x00\x01/", "https://\x00\x01"),
    ("http://" + "a" * 70 + ".com/", "https://" + "a" * 70 + ".com"),
]


@pytest.mark.parametrize(("raw", "expected"), GARBAGE)
def test_garbage_comes_back_best_effort(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@given(st.text(max_size=80))
def test_never_raises(text: str) -> None:
    assert isinstance(canonical_url(text), str)
    assert isinstance(url_host(text), str)


@given(st.sampled_from(["http://", "https://", "//", ""]), st.text(max_size=40))
def test_never_raises_on_url_shaped_text(prefix: str, text: str) -> None:
    assert isinstance(canonical_url(prefix + "example.com/" + text), str)


def test_same_outlet_copies_in_the_labelled_set_share_a_url() -> None:
    variants = [
        "http://sportplus.example/football/derby-zvezda-partizan/",
        "https://www.sportplus.example/football/derby-zvezda-partizan?utm_source=fb&fbclid=x1",
    ]
    assert len({canonical_url(v) for v in variants}) == 1


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://www.BalkanWire.example/x", "balkanwire.example"),
        ("http://m.example.com:8080/x", "example.com"),
        ("https://вести.срб/a", "xn--b1agj9af.xn--90a3ac"),
        ("not a url", ""),
        ("", ""),
    ],
)
def test_url_host(url: str, host: str) -> None:
    assert url_host(url) == host
