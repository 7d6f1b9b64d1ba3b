"""The fast matcher against its slow references, over real feed items.

The fast path (TopicIndex candidates, before and after it re-keys topics, generated predicates, build_match looking in one field and only as far
as the snippet window) must give exactly what the plain route gives: every topic's closures
(``_compile``) for the verdict, and every occurrence from explain() for terms and snippet. The items come
from the benchmark's feed farm (English, Serbian Latin and Cyrillic, codes written three ways) and the
sample feeds; the topics are the poll benchmark's, plus queries of every shape made from the items' own
words, so that phrases, codes, prefixes, scopes and NEAR really occur.
"""

from __future__ import annotations

import random
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.test_match import _reference_match
from watcher.match import Document, _compile, compile_query, prepare
from watcher.models import Match
from watcher.parse import parse_feed
from watcher.query import Query, parse_query
from watcher.topicindex import TopicIndex

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT / "bench"))

import farm as farmlib  # noqa: E402
import peers  # noqa: E402

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _items(tmp: Path) -> list[tuple[str, str]]:
    farm = farmlib.generate(tmp, 6, seed=11, base=NOW)
    bodies = [(f"http://farm/{s.filename}", farm.path(s).read_bytes()) for s in farm.feeds]
    samples = sorted((_ROOT / "tests" / "data" / "feeds").glob("*"))
    bodies += [(f"http://data/{p.name}", p.read_bytes()) for p in samples if p.suffix in (".xml", ".json")]
    items: list[tuple[str, str]] = []
    for url, body in bodies:
        try:
            parsed = parse_feed(body, url=url, headers={}, now=NOW)
        except Exception:  # the hostile samples (billion laughs) are refused, which is their point
            continue
        items += [(i.title, i.text) for i in parsed.items]
    return items


def _shaped_queries(items: list[tuple[str, str]], rng: random.Random) -> list[str]:
    """Queries built from the items' words, one of each shape per pick, so most of them match something."""
    out: list[str] = []
    for title, text in rng.sample(items, 40):
        words = [w.strip(".,:;!?\"'()«»“”„") for w in text.split()]
        words = [w for w in words if w.isalnum()]
        heads = [w for w in title.split() if w.isalnum()]
        if len(words) < 8 or not heads:
            continue
        i = rng.randrange(len(words) - 3)
        a, b, c = words[i], words[i + 1], words[rng.randrange(len(words))]
        out += [
            f"{a} AND {c}",
            f'"{a} {b}"',
            f"{a[:4]}* OR {c}",
            f"title:{rng.choice(heads)} OR text:{c}",
            f"{a} NEAR/3 {c}",
            f"({a} OR {b}) NOT {c}",
            f"{c} AND NOT title:{rng.choice(heads)}",
            f'"{a} {b[:3]}*" OR {c[:2]}*',
        ]
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Document], list[tuple[str, Query]]]:
    items = _items(tmp_path_factory.mktemp("farm"))
    aliases = tomllib.loads(peers.ALIASES)["aliases"]
    topics = [(name, parse_query(q, aliases)) for name, q in peers.TOPICS]
    codes = ["FK-3 OR HQ22", '"CH 92A" NEAR/10 (Serbia OR Srbija OR Србија)', "text:(FK3 OR CH-95)"]
    topics += [(f"code{i}", parse_query(q)) for i, q in enumerate(codes)]
    shaped = _shaped_queries(items, random.Random(5))
    topics += [(f"shape{i}", parse_query(q)) for i, q in enumerate(shaped)]
    return [prepare(t, x) for t, x in items], topics


def test_index_and_matches_equal_the_references(
    corpus: tuple[list[Document], list[tuple[str, Query]]],
) -> None:
    docs, topics = corpus
    index = TopicIndex(topics, learn=50)  # re-keyed by observed frequencies a fifth of the way in
    closures = [(name, q, _compile(q.root)) for name, q in topics]
    hits = 0
    seen_title = seen_phrase = False
    for doc in docs:
        expected: dict[str, Match] = {}
        for name, q, closure in closures:
            assert compile_query(q).pred(doc) is closure(doc)
            if closure(doc):
                expected[name] = _reference_match(q, doc)
        assert index.matching(doc) == list(expected)
        found = index.match(doc)
        assert list(found) == list(expected)
        for name, lazy in found.items():
            assert (lazy.terms, lazy.snippet, lazy.field) == (
                expected[name].terms,
                expected[name].snippet,
                expected[name].field,
            ), name
            seen_title |= lazy.field == "title"
            seen_phrase |= any(t.startswith('"') for t in lazy.terms)
        hits += len(found)
    # The comparison means something only if the corpus exercises the paths: many hits, both fields, phrases.
    assert len(docs) > 200 and hits > len(docs) and seen_title and seen_phrase
