"""parse_feed over feedparser's own test corpus (../shared/corpora/feedparser).

Every file must end as a ParsedFeed or a ParseError, never any other exception, within a few seconds, and
every ParsedFeed must keep the Item guarantees (clean text, UTC dates, http(s) links, unique ids). The files'
``Header: Name: value`` comment lines are passed on as response headers, as feedparser's test helpers do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.errors import ParseError
from watcher.models import ParsedFeed
from watcher.parse import parse_feed

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "feedparser"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
URL = "http://corpus.example.com/feeds/feed.xml"

if not CORPUS.is_dir():
    pytest.skip(f"feedparser corpus not found at {CORPUS}", allow_module_level=True)

FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".json"))
_COMMENT = re.compile(rb"<!--(.*?)-->", re.DOTALL)
_HEADER = re.compile(r"^\s*Header:\s*([^:\s]+)\s*:(.*)$", re.MULTILINE)
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def corpus_headers(body: bytes) -> dict[str, str]:
    """Response headers declared in the file's first comment (feedparser tests/helpers.py convention)."""
    m = _COMMENT.search(body[:4096])
    if not m:
        return {}
    text = m.group(1).decode("latin-1")
    return {name: value.strip() for name, value in _HEADER.findall(text)}


def check_invariants(feed: ParsedFeed) -> None:
    guids = [i.guid for i in feed.items]
    assert len(guids) == len(set(guids))
    for text in (feed.title, feed.warning, feed.language):
        assert text is None or not _BAD_CHARS.search(text)
    assert feed.link is None or feed.link.startswith(("http://", "https://"))
    for item in feed.items:
        assert item.id_source in ("guid", "link", "hash")
        assert item.guid
        for text in (
            item.guid,
            item.title,
            item.summary,
            item.content,
            item.author or "",
            item.language or "",
        ):
            assert not _BAD_CHARS.search(text)
        assert len(item.title) <= 1_000
        assert item.link is None or item.link.lower().startswith(("http://", "https://"))
        assert item.published is None or item.published.tzinfo is UTC


def test_corpus_is_not_empty() -> None:
    assert len(FILES) > 1_000


def test_header_lines_are_read() -> None:
    body = (
        b"<!--\nHeader:       Content-type: text/xml; charset=windows-1252\nHeader: X-Foo: bar\n-->\n<rss/>"
    )
    assert corpus_headers(body) == {"Content-type": "text/xml; charset=windows-1252", "X-Foo": "bar"}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_file_parses_or_fails_cleanly(path: Path) -> None:
    body = path.read_bytes()
    outcome: ParsedFeed | ParseError
    try:
        outcome = parse_feed(body, url=URL, headers=corpus_headers(body), now=NOW)
    except ParseError as e:  # anything else propagates and fails the test
        outcome = e
    if isinstance(outcome, ParseError):
        assert outcome.url == URL
        assert outcome.detail.startswith(("not a feed", "empty body"))
    else:
        check_invariants(outcome)


def _both(path: Path) -> tuple[ParsedFeed, ParsedFeed] | None:
    body = path.read_bytes()
    headers = {"Content-Type": "application/xml", **corpus_headers(body)}
    try:
        fast = parse_feed(body, url=URL, headers=headers, now=NOW)
    except ParseError:
        return None
    if fast.parser != "fast":
        return None
    return fast, parse_feed(body, url=URL, headers=headers, now=NOW, fast_path=False)


def test_fast_path_gives_feedparsers_items_on_the_corpus() -> None:
    """Wherever the lxml fast path accepts a corpus file, its output equals the feedparser path's."""
    accepted = 0
    differences: list[str] = []
    for path in FILES:
        pair = _both(path)
        if pair is None:
            continue
        accepted += 1
        fast, slow = pair
        if (fast.title, fast.link, fast.language, fast.items) != (
            slow.title,
            slow.link,
            slow.language,
            slow.items,
        ):
            differences.append(f"{path.relative_to(CORPUS)}:\n  fast: {fast}\n  feedparser: {slow}")
    assert accepted > 500  # the fast path must actually run on plain RSS 2.0 / Atom 1.0
    assert differences == []
