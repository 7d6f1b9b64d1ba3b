from __future__ import annotations

import gc

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from watcher.explain import explain
from watcher.match import (
    Document,
    LazyMatch,
    _compile,
    compile_query,
    match,
    prepare,
)
from watcher.models import MARK_CLOSE, MARK_OPEN, Match
from watcher.query import Query, parse_query
from watcher.text import snippet
from watcher.topicindex import TopicIndex, required_keys

ALIASES = {"fk3": ["FK-3", "HQ-22", '"Hong Qi 22"'], "serbia": ["Serbia", "Srbija", "Србија"]}


def matches(query: str, text: str, title: str = "") -> bool:
    return match(parse_query(query, ALIASES), prepare(title, text)) is not None


def marked(s: str) -> list[str]:
    """The marked stretches of a snippet."""
    return [part.split(MARK_CLOSE)[0] for part in s.split(MARK_OPEN)[1:]]


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # folding: case, diacritics, script, Đ
        ("Vucic", "Predsednik Vučić je rekao", True),
        ("Vučić", "President Vucic said", True),
        ("VUČIĆ", "Вучић је рекао", True),
        ("Вучић", "VUCIC SAID", True),
        ("Srbija", "Влада Србије и Србија", True),
        ("Србија", "Srbija danas", True),
        ("Đilas", "Ђилас је рекао", True),
        ("Djilas", "Đilas said", True),
        ("Ђилас", "Djilas said", True),
        ("Dilas", "Đilas said", False),  # Đ is dj, not d
        # whole tokens
        ("Serbia", "Serbian officials said", False),
        ("Serbia", "Serbia's president", True),
        ("Serbia", "(Serbia)", True),
        ("serbian", "Serbia", False),
        # prefixes
        ("drone*", "a drone", True),
        ("drone*", "the drones", True),
        ("dron*", "kineski dronovi", True),
        ("drone*", "kineski dronovi", False),  # a prefix is a prefix: dronovi does not start with drone
        ("drone*", "a dron", False),
        ("Вучић*", "Vučićevi saradnici", True),
        # phrases, across punctuation but in order and consecutive
        ('"Serbia China"', "Serbia, China and Russia", True),
        ('"Serbia China"', "Serbia - (China)", True),
        ('"Serbia China"', "China, Serbia", False),
        ('"Serbia China"', "Serbia and China", False),
        ('"Aleksandar Vučić"', "АЛЕКСАНДАР ВУЧИЋ", True),
        ('"hong qi*"', "the Hong Qiao airport", True),
        # joined codes, in both directions
        ("FK-3", "the FK-3 system", True),
        ("FK-3", "the FK 3 system", True),
        ("FK-3", "the FK3 system", True),
        ("FK-3", "the ФК-3 system", True),
        ("FK3", "the FK-3 system", True),
        ("FK3", "the FK 3 system", True),
        ('"FK 3"', "the FK3 system", True),
        ('"FK 3"', "the FK-3 system", True),
        ("FK-3", "the FK–3 system", True),  # en dash
        ("FK-3", "the FK, 3 of them", False),  # a comma is not a code separator
        ("FK-3", "FK. 3 people", False),
        ("FK-3", "the FK-35 system", False),
        ("FK-3*", "the FK-35 system", True),
        ("CH-92A", "the CH92A drone", True),
        ("CH-92A", "the CH-92A drone", True),
        ("CH92A", "the CH-92A drone", True),
        ("CH92A", "the CH 92 A drone", True),
        ("CH92A", "the CH-92 drone", False),
        ("HQ-22", "HQ22 batteries", True),
        ("HQ22", "HQ-22 batteries", True),
        ("HQ22", "HQ 22 batteries", True),
        ('"Hong Qi 22"', "Hong Qi-22 launchers", True),
        ('"Hong Qi 22"', "Hong Qi22 launchers", True),
        ("@fk3", "HQ22 batteries", True),
        ("@fk3", "Hong Qi 22", True),
        ("@fk3", "Hong Kong", False),
        # boolean structure
        ("Serbia China", "China and Serbia", True),
        ("Serbia China", "Serbia only", False),
        ("Serbia AND China", "Serbia only", False),
        ("Serbia OR China", "China only", True),
        ("Serbia NOT sport", "Serbia politics", True),
        ("Serbia NOT sport", "Serbia sport", False),
        ("Serbia AND NOT sport", "Serbia sport", False),
        ("NOT sport", "politics", True),
        ("NOT sport", "sport news", False),
        ("Serbia (China OR NOT sport)", "Serbia politics", True),
        ("Serbia (China OR NOT sport)", "Serbia sport", False),
        ("Serbia (China OR NOT sport)", "Serbia sport China", True),
        ("Serbia NOT (sport OR football)", "Serbia football", False),
        ("Serbia NOT (sport OR football)", "Serbia news", True),
        ("NOT NOT Serbia", "Serbia", True),
        # precedence: NOT > AND > OR
        ("a OR b c", "a", True),
        ("a OR b c", "b", False),
        ("a b OR c", "c", True),
        ("NOT a b", "b", True),
        ("NOT a b", "a b", False),
        ("NOT a OR b", "a b", True),
        # lower-case words are terms
        ("and", "rock and roll", True),
        ("not", "do not", True),
    ],
)  # fmt: skip
def test_match_table(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("Vucic NEAR/5 drones", "Vucic said the drones", True),  # 3 apart
        ("drones NEAR/5 Vucic", "Vucic said the drones", True),  # either order
        ("a NEAR/1 b", "a b", True),  # adjacent tokens are 1 apart
        ("a NEAR/1 b", "b a", True),
        ("a NEAR/1 b", "a x b", False),
        ("a NEAR/2 b", "a x b", True),
        ("a NEAR/5 b", "a 1 2 3 4 b", True),  # exactly 5
        ("a NEAR/5 b", "a 1 2 3 4 5 b", False),  # 6
        ("a NEAR/5 b", "b 1 2 3 4 a", True),
        ("a NEAR/5 b", "b 1 2 3 4 5 a", False),
        ("a NEAR b", "a 1 2 3 4 b", True),  # default 5
        ("a NEAR b", "a 1 2 3 4 5 b", False),
        ("a NEAR/5 b", "a, 1; 2. 3 - 4! b", True),  # punctuation is not a token
        ("a NEAR/2 b", "a x x x x b ... a x b", True),  # some pair is close enough
        ("a NEAR/3 a", "a", False),  # two different occurrences
        ("a NEAR/3 a", "a x a", True),
        ('"x y" NEAR/1 z', "x y z", True),  # distance from the phrase's last word
        ('"x y" NEAR/1 z', "z x y", True),
        ('"x y" NEAR/1 z', "x y q z", False),
        ("FK-3 NEAR/2 Serbia", "Serbia buys FK 3", True),
        ("(FK-3 OR HQ-22) NEAR/4 Srbija", "HQ22 za Србију и Србија", True),
        ("(FK-3 OR HQ-22) NEAR/3 Srbija", "HQ22 za Србију и Србија", False),  # Србију is srbiju
        ("@fk3 NEAR/2 @serbia", "Србија, HQ-22", True),
        ("drone* NEAR/2 Kin*", "kineski dronovi", False),
        ("dron* NEAR/2 Kin*", "kineski dronovi", True),
        ("NOT a NEAR/1 b", "a b", False),  # NEAR binds tighter than NOT
        ("NOT a NEAR/1 b", "a x b", True),
    ],
)
def test_near(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "title", "text", "expected"),
    [
        ("title:Vucic", "Vučić says", "nothing", True),
        ("title:Vucic", "Nothing", "Vučić says", False),
        ("text:Vucic", "Vučić says", "nothing", False),
        ("text:Vucic", "nothing", "Vučić says", True),
        ("Vucic", "Vučić says", "nothing", True),  # unqualified: title or text
        ("Vucic", "nothing", "Vučić says", True),
        ('title:"Vucic says"', "Vučić says", "", True),
        ("title:(drone* OR missile*)", "Missiles", "drones", True),
        ("title:(drone* OR missile*)", "News", "drones", False),
        ("title:(Serbia NOT sport) China", "Serbia today", "China", True),
        ("title:(Serbia NOT sport) China", "Serbia sport", "China", False),
        ("title:(Serbia NOT sport) China", "Serbia today", "sport China", True),
        ("title:@fk3", "HQ-22 deal", "", True),
        ("title:@fk3", "", "HQ-22 deal", False),
        # a phrase, code or NEAR never spans the title/text boundary
        ('"Serbia China"', "Serbia", "China", False),
        ('"Serbia China"', "", "Serbia China", True),
        ("FK-3", "FK", "3", False),
        ("FK-3", "FK", "FK-3", True),
        ("a NEAR/1 b", "x a", "b x", False),
        ("a NEAR/1 b", "b a", "", True),
        ("title:a NEAR/1 b", "a", "b", False),
        ("title:a NEAR/1 b", "a b", "", True),
        ("title:a NEAR/1 b", "b", "a b", False),
    ],
)
def test_fields(query: str, title: str, text: str, expected: bool) -> None:
    assert matches(query, text, title) is expected


MISSION = (
    "(Serbia OR Srbija OR Србија OR Vucic) AND (China OR Chinese OR Kina OR kines* OR kinesk*) "
    'AND (dron* OR missile* OR raket* OR "FK-3" OR @fk3)'
)
SAMPLES = {
    "english": (
        "Serbia takes delivery of Chinese drones",
        "BELGRADE - Serbia has received Chinese-made CH-92A drones, President Vucic said on Saturday.",
    ),
    "latin": (
        "Vučić: Srbija dobija kineske dronove",
        "Predsednik Vučić rekao je da Srbija ove godine dobija kineski dronovi i rakete.",
    ),
    "cyrillic": (
        "Вучић о набавци",
        "Председник Вучић је рекао да Србија добија кинеске ракете FK-3 и систем ФК-3.",
    ),
}
BOILERPLATE = (
    "Subscribe to our newsletter",
    "Cookie policy. All rights reserved. Share on Facebook, Twitter. Read more. Advertisement.",
)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_mission_query_in_three_scripts(sample: str) -> None:
    q = parse_query(MISSION, ALIASES)
    title, text = SAMPLES[sample]
    m = match(q, prepare(title, text))
    assert m is not None
    assert m.field == "text"
    assert MARK_OPEN in m.snippet


def test_mission_query_terms_as_written() -> None:
    q = parse_query(MISSION, ALIASES)
    m = match(q, prepare(*SAMPLES["cyrillic"]))
    assert m is not None
    assert m.terms == ("Srbija", "Србија", "Vucic", "kines*", "kinesk*", "raket*", '"FK-3"', "FK-3")
    assert marked(m.snippet) == ["Вучић", "Србија", "кинеске", "ракете", "FK-3", "ФК-3"]


def test_mission_query_skips_boilerplate() -> None:
    assert match(parse_query(MISSION, ALIASES), prepare(*BOILERPLATE)) is None


def test_snippet_prefers_text_and_marks_words() -> None:
    m = match(parse_query("Vucic drone*"), prepare("Vučić", "Yesterday Vučić inspected two drones."))
    assert m is not None
    assert m.field == "text"
    assert m.snippet == f"Yesterday {MARK_OPEN}Vučić{MARK_CLOSE} inspected two {MARK_OPEN}drones{MARK_CLOSE}."
    assert m.terms == ("Vucic", "drone*")


def test_snippet_from_title_when_only_the_title_matched() -> None:
    m = match(parse_query("Vucic"), prepare("Вучић у Пекингу", "Nothing here"))
    assert m is not None
    assert m.field == "title"
    assert m.snippet == f"{MARK_OPEN}Вучић{MARK_CLOSE} у Пекингу"


def test_snippet_marks_a_phrase_as_one_stretch() -> None:
    m = match(parse_query('"Hong Qi 22"'), prepare("", "Sold: Hong Qi-22, twice."))
    assert m is not None
    assert marked(m.snippet) == ["Hong Qi-22"]


def test_snippet_of_long_text_is_windowed_around_the_first_match() -> None:
    filler = "word " * 200
    text = f"{filler}the Vučić\nstatement\t{filler}"
    m = match(parse_query("Vucic"), prepare("", text))
    assert m is not None
    assert m.snippet.startswith("…")
    assert m.snippet.endswith("…")
    assert len(m.snippet) <= 230
    assert f"the {MARK_OPEN}Vučić{MARK_CLOSE} statement word" in m.snippet  # whitespace collapsed


def test_snippet_strips_mark_characters_from_the_source() -> None:
    assert snippet(f"a{MARK_OPEN}b x", [(4, 5)]) == f"ab {MARK_OPEN}x{MARK_CLOSE}"


def test_purely_negative_match_has_no_terms() -> None:
    m = match(parse_query("NOT sport"), prepare("Title", "Body text"))
    assert m is not None
    assert m.terms == ()
    assert m.snippet == "Body text"


def test_negated_terms_are_not_reported() -> None:
    m = match(parse_query("Serbia (China OR NOT sport)"), prepare("", "Serbia news"))
    assert m is not None
    assert m.terms == ("Serbia",)


def test_explain_lists_positions_and_missing_terms() -> None:
    q = parse_query("title:Vucic NEAR/2 kineske NOT sport", ALIASES)
    ex = explain(q, prepare("Vučić i kineske rakete", "sport"))
    assert not ex.matched
    assert ex.match is None
    assert [(h.term, h.field, h.first_token, h.text, h.negated) for h in ex.hits] == [
        ("Vucic", "title", 0, "Vučić", False),
        ("kineske", "title", 2, "kineske", False),
        ("sport", "text", 0, "sport", True),
    ]
    assert ex.missing == ()
    lines = ex.format().splitlines()
    assert lines[0].startswith("NO MATCH")
    assert "(under NOT)" in lines[-1]


def test_explain_a_match() -> None:
    ex = explain(parse_query("FK-3 OR missile*"), prepare("", "Srbija: ракете FK 3"))
    assert ex.matched
    assert [(h.term, h.field, h.first_token, h.last_token, h.text) for h in ex.hits] == [
        ("FK-3", "text", 2, 3, "FK 3"),
    ]
    assert ex.missing == ("missile*",)
    assert ex.match is not None
    assert "snippet (text): Srbija: ракете [FK 3]" in ex.format()


# --- TopicIndex -----------------------------------------------------------------------------------------

TOPICS = {
    "serbia-china": MISSION,
    "vucic": "Vucic",
    "drones-title": "title:dron*",
    "not-sport": "NOT sport",
    "codes": "@fk3 NOT exhibition",
    "near": "Vucic NEAR/3 Kin*",
    "either-or-not": "Belgrade OR NOT weather",
    "phrase": '"Hong Qi 22"',
    "short-prefix": "k*",
}
DOCS = [
    *SAMPLES.values(),
    BOILERPLATE,
    ("Sport", "Vučić watched the sport match."),
    ("Weather", "Sunny in Belgrade."),
    ("Weather", "Rain."),
    ("HQ-22 exhibition", "Hong Qi 22 at the exhibition"),
    ("", ""),
]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_topic_index_agrees_with_match(doc: tuple[str, str]) -> None:
    queries = {name: parse_query(src, ALIASES) for name, src in TOPICS.items()}
    index = TopicIndex(list(queries.items()))
    prepared = prepare(*doc)
    expected = {name: m for name, q in queries.items() if (m := match(q, prepared)) is not None}
    assert index.match(prepared) == expected
    assert len(index) == len(TOPICS)


def test_topic_index_skips_topics_without_their_words() -> None:
    index = TopicIndex([("a", parse_query("alpha beta")), ("b", parse_query("gamma* OR delta"))])
    assert index.candidates(prepare("", "nothing relevant")) == []
    assert index.candidates(prepare("", "gammas")) == [1]
    assert index.candidates(prepare("", "beta")) != [1]


def test_topic_index_rekeys_by_the_rarer_clause_after_learning() -> None:
    q = parse_query("common AND rare")
    index = TopicIndex([("t", q)], learn=3)
    only_common = prepare("", "common words only")
    assert index.candidates(only_common) == [0]  # statically keyed by the first side
    for text in ("common", "common again", "rare and common"):
        index.candidates(prepare("", text))
    assert index.candidates(only_common) == []  # "rare" was in fewer of the three
    assert index.candidates(prepare("", "rare")) == [0]
    assert index.match(prepare("", "rare, common")) == {"t": match(q, prepare("", "rare, common"))}


def test_purely_negative_topics_are_always_candidates() -> None:
    index = TopicIndex([("quiet", parse_query("NOT noise")), ("x", parse_query("x"))])
    assert index.candidates(prepare("", "anything")) == [0]
    assert index.match(prepare("", "noise")) == {}


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("Serbia", {(False, "serbia")}),
        ("Serbia OR drone*", {(False, "serbia"), (True, "drone")}),
        ("(Serbia OR Srbija) AND FK-3", {(False, "serbia"), (False, "srbija")}),  # "fk" is short: common
        ("(Serbia OR Srbija OR Vucic) AND drone*", {(True, "drone")}),
        ("(Serbia OR Srbija) AND CH-92A", {(False, "serbia"), (False, "srbija")}),
        ("NOT sport", None),
        ("Serbia OR NOT sport", None),
        ("Serbia NOT sport", {(False, "serbia")}),
        ('"hong qi*"', {(False, "hong")}),
        ("a NEAR/3 Serbia", {(False, "serbia")}),  # the longer, rarer side
    ],
)
def test_required_keys(query: str, keys: set[tuple[bool, str]] | None) -> None:
    got = required_keys(parse_query(query).root)
    assert (None if got is None else set(got)) == keys


_WORDS = st.sampled_from(
    [
        "Serbia",
        "Србија",
        "Vučić",
        "FK",
        "3",
        "FK-3",
        "FK3",
        "HQ22",
        "drone",
        "dronovi",
        "sport",
        "Kina",
        "a",
        "b",
    ]
)
_TEXTS = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(_WORDS, st.sampled_from([" ", "-", ", ", ". ", "\n", "«", "’s"])), max_size=30).map(
        "".join
    ),
)
_QUERIES = [
    parse_query(q, ALIASES)
    for q in [MISSION, *TOPICS.values(), "a NEAR/1 b", '"FK 3" NEAR/2 Serbia', "title:(a OR b*) NOT text:c"]
]


@settings(max_examples=300, deadline=None)
@given(title=_TEXTS, text=_TEXTS)
def test_matching_never_raises_and_index_agrees(title: str, text: str) -> None:
    doc = prepare(title, text)
    assert isinstance(doc, Document)
    expected = {}
    for i, q in enumerate(_QUERIES):
        m = match(q, doc)
        explain(q, doc)
        if m is not None:
            expected[str(i)] = m
            assert set(m.terms) <= {t.source for t in q.terms()}
            assert m.field in ("title", "text")
    assert TopicIndex([(str(i), q) for i, q in enumerate(_QUERIES)]).match(doc) == expected


_LEAVES = st.sampled_from(
    [
        "@fk3",
        '"Hong Qi"',
        "FK-3",
        "CH92A",
        "Serbia",
        "Србија",
        "drone*",
        "dron*",
        "a",
        "b",
        "Vučić",
        "3",
        "sport",
    ]
)


def _combine(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(parts, parts)
    return st.one_of(
        pair.map(lambda p: f"({p[0]} OR {p[1]})"),
        pair.map(lambda p: f"{p[0]} AND {p[1]}"),
        pair.map(lambda p: f"({p[0]} NOT {p[1]})"),
        parts.map(lambda p: f"title:({p})"),
        parts.map(lambda p: f"NOT ({p})"),
    )


_QUERY_SOURCES = st.one_of(
    st.recursive(_LEAVES, _combine, max_leaves=6),
    st.tuples(_LEAVES, _LEAVES, st.integers(1, 4)).map(lambda t: f"{t[0]} NEAR/{t[2]} {t[1]}"),
)


_MATCHABLE = st.lists(
    st.sampled_from(
        ["FK-3", "FK 3", "FK3", "CH-92A", "Serbia", "Србија", "drones", "dronovi", "a", "b", "Vučić", "3",
         "sport", "Hong Qi", "HQ22", " ", ", ", ". "]
    ),
    max_size=12,
).map(" ".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    source=_QUERY_SOURCES,
    title=st.one_of(_MATCHABLE, _TEXTS),
    text=st.one_of(_MATCHABLE, _TEXTS),
)
def test_random_queries_never_raise_and_the_index_never_misses(source: str, title: str, text: str) -> None:
    # A query the index would wrongly skip is a silent miss, so its keys must be sound for any query shape.
    q = parse_query(source, ALIASES)
    doc = prepare(title, text)
    m = match(q, doc)
    event("matched" if m else "did not match")
    assert TopicIndex([("q", q)]).match(doc) == ({} if m is None else {"q": m})
    assert explain(q, doc).matched is (m is not None)


def test_documents_hold_no_reference_cycles() -> None:
    # A cycle would leave every prepared item to the cyclic GC, which costs about a fifth of throughput.
    q = parse_query(MISSION, ALIASES)
    index = TopicIndex([("t", q)])
    compile_query(q)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        doc = prepare(*SAMPLES["cyrillic"])
        assert index.match(doc)
        explain(q, doc)
        del doc
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


def _reference_match(q: Query, doc: Document) -> Match:
    """The Match rebuilt from explain()'s list of every occurrence: an independent route to the same
    terms and snippet as the fast path that TopicIndex and match() take."""
    hits = [h for h in explain(q, doc).hits if not h.negated]
    terms = tuple(dict.fromkeys(h.term for h in hits))
    if not hits:
        field = doc.text if doc.text.source.strip() or not doc.title.source.strip() else doc.title
        return Match(terms=terms, snippet=snippet(field.source, []), field=field.name)
    name = "text" if any(h.field == "text" for h in hits) else "title"
    source = doc.text.source if name == "text" else doc.title.source
    ranges = [
        (h.start, h.end) for h in sorted(hits, key=lambda h: (h.first_token, h.last_token)) if h.field == name
    ]
    return Match(terms=terms, snippet=snippet(source, ranges), field=name)


@settings(max_examples=300, deadline=None)
@given(
    source=_QUERY_SOURCES,
    title=st.one_of(_MATCHABLE, _TEXTS),
    text=st.one_of(_MATCHABLE, _TEXTS),
)
def test_lazy_match_equals_the_reference(source: str, title: str, text: str) -> None:
    q = parse_query(source, ALIASES)
    doc = prepare(title, text)
    found = TopicIndex([("q", q)]).match(doc).get("q")
    if found is None:
        return
    assert isinstance(found, LazyMatch)
    built = found.build()
    assert built == _reference_match(q, doc) == match(q, doc)
    assert (found.terms, found.snippet, found.field) == (built.terms, built.snippet, built.field)


def test_lazy_match_builds_once_on_first_use() -> None:
    q = parse_query("Vucic", ALIASES)
    found = TopicIndex([("t", q)]).match(prepare("", "Predsednik Vučić je rekao"))["t"]
    first = found.build()
    assert first is found.build()  # built once, then kept
    assert found.terms == ("Vucic",)
    assert marked(found.snippet) == ["Vučić"]
    assert found == first and found != Match(terms=(), snippet="")


@settings(max_examples=300, deadline=None)
@given(
    source=_QUERY_SOURCES,
    title=st.one_of(_MATCHABLE, _TEXTS),
    text=st.one_of(_MATCHABLE, _TEXTS),
)
def test_generated_predicate_equals_the_closures(source: str, title: str, text: str) -> None:
    q = parse_query(source, ALIASES)
    doc = prepare(title, text)
    assert compile_query(q).pred(doc) is _compile(q.root)(doc)


def test_deeply_nested_query_still_compiles() -> None:
    source = "(" * 60 + "a OR NOT b" + ")" * 60
    q = parse_query(source)
    assert match(q, prepare("", "a")) is not None
    assert match(q, prepare("", "b")) is None
