from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.errors import QuerySyntaxError
from watcher.query import DEFAULT_NEAR, And, Near, Not, Or, Query, Scope, Term, Word, parse_query

ALIASES = {"fk3": ["FK-3", "HQ-22", '"Hong Qi 22"'], "serbia": ["Serbia", "Srbija", "Србија"]}


def t(source: str, *words: str, scope: Scope = Scope.ANY) -> Term:
    """A single-variant term for expected trees; a trailing * marks a prefix word."""
    return Term(source, (tuple(Word(w.rstrip("*"), prefix=w.endswith("*")) for w in words),), scope)


def shape(q: str, aliases: dict[str, list[str]] | None = None) -> object:
    """A compact rendering of the tree, to keep precedence tables readable."""

    def walk(n: object) -> object:
        if isinstance(n, Term):
            return n.source if n.scope is Scope.ANY else f"{n.scope.value}:{n.source}"
        if isinstance(n, And):
            return ("AND", *map(walk, n.children))
        if isinstance(n, Or):
            return ("OR", *map(walk, n.children))
        if isinstance(n, Not):
            return ("NOT", walk(n.child))
        assert isinstance(n, Near)
        return (f"NEAR/{n.distance}", walk(n.left), walk(n.right))

    return walk(parse_query(q, aliases).root)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a", "a"),
        ("a b", ("AND", "a", "b")),
        ("a AND b", ("AND", "a", "b")),
        ("a OR b c", ("OR", "a", ("AND", "b", "c"))),
        ("a b OR c", ("OR", ("AND", "a", "b"), "c")),
        ("a OR b AND c OR d", ("OR", "a", ("AND", "b", "c"), "d")),
        ("NOT a b", ("AND", ("NOT", "a"), "b")),
        ("a NOT b", ("AND", "a", ("NOT", "b"))),
        ("a AND NOT b OR c", ("OR", ("AND", "a", ("NOT", "b")), "c")),
        ("NOT NOT a", ("NOT", ("NOT", "a"))),
        ("(a OR b) c", ("AND", ("OR", "a", "b"), "c")),
        ("a (b OR NOT c)", ("AND", "a", ("OR", "b", ("NOT", "c")))),
        ("NOT a NEAR/3 b", ("NOT", ("NEAR/3", "a", "b"))),
        ("a NEAR b", (f"NEAR/{DEFAULT_NEAR}", "a", "b")),
        ("x a NEAR/2 (b OR c*)", ("AND", "x", ("NEAR/2", "a", ("OR", "b", "c*")))),
        ('"a b" NEAR/1 c', ("NEAR/1", '"a b"', "c")),
        ("title:a b", ("AND", "title:a", "b")),
        ('title:"a b" text:c', ("AND", 'title:"a b"', "text:c")),
        ("title:(a OR NOT b)", ("OR", "title:a", ("NOT", "title:b"))),
        ("Title:a", "title:a"),
        ("and or not near", ("AND", "and", "or", "not", "near")),  # lower case is never an operator
        ("NEARBY ANDROID", ("AND", "NEARBY", "ANDROID")),
        ("10:30", "10:30"),  # not a field name: a term with two words
        ("@fk3", ("OR", "FK-3", "HQ-22", '"Hong Qi 22"')),
        ("title:@serbia x", ("AND", ("OR", "title:Serbia", "title:Srbija", "title:Србија"), "x")),
        ("@fk3 NEAR/4 @serbia",
         ("NEAR/4", ("OR", "FK-3", "HQ-22", '"Hong Qi 22"'), ("OR", "Serbia", "Srbija", "Србија"))),
    ],
)  # fmt: skip
def test_structure_and_precedence(query: str, expected: object) -> None:
    assert shape(query, {k: list(v) for k, v in ALIASES.items()}) == expected


@pytest.mark.parametrize(
    ("query", "term"),
    [
        ("Vučić", t("Vučić", "vucic")),
        ("ВУЧИЋ", t("ВУЧИЋ", "vucic")),
        ("drone*", t("drone*", "drone*")),
        ('"Aleksandar Vučić"', t('"Aleksandar Vučić"', "aleksandar", "vucic")),
        ("Serbia's", t("Serbia's", "serbia", "s")),
        ('"Serbia, China"', t('"Serbia, China"', "serbia", "china")),
        ('"hong qi*"', t('"hong qi*"', "hong", "qi*")),
    ],
)
def test_terms_are_folded(query: str, term: Term) -> None:
    assert parse_query(query).root == term


def variants(query: str) -> set[tuple[str, ...]]:
    """Variants as strings: '+' marks a word that must be glued to the previous one, '*' a prefix."""
    root = parse_query(query).root
    assert isinstance(root, Term)
    return {
        tuple(("+" if w.glued else "") + w.text + ("*" if w.prefix else "") for w in v) for v in root.variants
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("FK-3", {("fk3",), ("fk", "+3")}),
        ('"FK 3"', {("fk3",), ("fk", "+3")}),
        ("FK3", {("fk3",), ("fk", "+3")}),
        ("фк-3", {("fk3",), ("fk", "+3")}),
        ("HQ-22", {("hq22",), ("hq", "+22")}),
        ("CH-92A", {("ch92a",), ("ch", "+92a"), ("ch92", "+a"), ("ch", "+92", "+a")}),
        ("CH92A", {("ch92a",), ("ch", "+92a"), ("ch92", "+a"), ("ch", "+92", "+a")}),
        ('"Hong Qi 22"', {("hong", "qi22"), ("hong", "qi", "+22")}),
        ("FK-3*", {("fk3*",), ("fk", "+3*")}),
        ("Al-Jazeera", {("al", "jazeera")}),  # letters to letters is a phrase, not a code
        ("2024-25", {("2024", "25")}),
    ],
)
def test_codes_have_joined_and_split_variants(query: str, expected: set[tuple[str, ...]]) -> None:
    assert variants(query) == expected
    root = parse_query(query).root
    assert isinstance(root, Term)
    assert root.source == query


def test_code_spellings_are_one_term() -> None:
    def vs(q: str) -> object:
        root = parse_query(q).root
        assert isinstance(root, Term)
        return root.variants

    assert vs("FK-3") == vs('"FK 3"') == vs("FK3") == vs('"fk-3"') == vs("ФК-3")
    assert shape("FK 3") == ("AND", "FK", "3")  # unquoted, a space is AND: two terms, not one code


def test_many_boundaries_keep_variants_bounded() -> None:
    assert len(variants("a1b2c3d4e5")) <= 3


def test_query_is_immutable_and_hashable() -> None:
    a = parse_query("(Serbia OR Srbija) AND drone* NOT sport", ALIASES)
    b = parse_query("(Serbia OR Srbija) AND drone* NOT sport", ALIASES)
    assert a == b
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert a.source == "(Serbia OR Srbija) AND drone* NOT sport"
    assert [x.source for x in a.terms()] == ["Serbia", "Srbija", "drone*", "sport"]
    with pytest.raises(AttributeError):
        a.source = "x"  # type: ignore[misc]


def test_query_pickles_without_its_cached_hash() -> None:
    q = parse_query("(Serbia OR Srbija) AND FK-3 NEAR/3 drone*")
    hash(q)
    state = q.__reduce__()
    assert state == (Query, (q.source, q.root))  # the cached hash is not part of it
    copy = pickle.loads(pickle.dumps(q))
    assert copy == q
    assert hash(copy) == hash(q)


def test_alias_fragments_may_use_other_aliases() -> None:
    aliases = {"air": ["@fk3", "S-300"], **ALIASES}
    assert shape("@air", aliases) == ("OR", ("OR", "FK-3", "HQ-22", '"Hong Qi 22"'), "S-300")


def test_alias_given_as_a_single_string() -> None:
    assert shape("@x", {"x": "FK-3"}) == "FK-3"  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("", 1, "empty query"),
        ("   ", 1, "empty query"),
        ("(Serbia OR Srbija) AND (China OR Kina", 24, "unbalanced parenthesis"),
        ("Serbia OR Srbija) AND China", 17, "unbalanced parenthesis"),
        ("(a OR (b AND c)", 1, "unbalanced parenthesis"),
        ("a AND", 3, "AND needs a term after it"),
        ("a OR", 3, "OR needs a term after it"),
        ("NOT", 1, "NOT needs a term after it"),
        ("a NOT", 3, "NOT needs a term after it"),
        ("a AND OR b", 3, "AND needs a term after it"),
        ("(a AND) b", 4, "AND needs a term after it"),
        ("AND a", 1, "AND needs a term before it"),
        ("OR a", 1, "OR needs a term before it"),
        ("a NEAR/3", 3, "NEAR/3 needs a term after it"),
        ("NEAR/3 a", 1, "NEAR/3 needs a term before it"),
        ('Serbia "FK 3', 8, "unterminated quote"),
        ('"', 1, "unterminated quote"),
        ("a NEAR/x b", 8, "NEAR/ needs a whole number"),
        ("a NEAR/ b", 8, "NEAR/ needs a whole number"),
        ("a NEAR/0 b", 8, "NEAR distance must be between"),
        ("a NEAR/-2 b", 8, "NEAR/ needs a whole number"),
        ("a NEAR/99999 b", 8, "NEAR distance must be between"),
        ("a NEAR/٣ b", 8, "NEAR/ needs a whole number"),
        ("Serbia foo:bar", 8, "unknown field 'foo'"),
        ("http://example.com", 1, "unknown field 'http'"),
        ("title:", 1, "title: needs a term"),
        ("title: OR a", 1, "title: needs a term"),
        ("title:(text:a)", 8, "text: inside title: can never match"),
        ("Serbia @nope", 8, "unknown alias @nope"),
        ("@", 1, "@ must be followed by an alias name"),
        ("@loop", 1, "alias @loop refers to itself"),
        ("@bad", 1, "in alias @bad, fragment 'a AND': AND needs a term after it at column 3"),
        ("@empty", 1, "alias @empty is empty"),
        ("title:@titled", 7, "alias @titled uses text: inside title:"),
        ("()", 1, "empty parentheses"),
        ("a ( ) b", 3, "empty parentheses"),
        ("dr*ne", 3, "* is only allowed at the end of a word"),
        ('"hong *qi"', 7, "* is only allowed at the end of a word"),
        ("*", 1, "* needs letters or digits before it"),
        ("a -* b", 4, "* needs letters or digits before it"),
        ("&", 1, "term & has no letters or digits"),
        ('""', 1, 'phrase "" has no letters or digits'),
        ("(a AND b) NEAR/3 c", 1, "NEAR operands must be terms"),
        ("a NEAR/3 (b NOT c)", 10, "NEAR operands must be terms"),
        ("a NEAR/3 NOT b", 10, "expected a term"),
        ("a NEAR b NEAR c", 10, "NEAR cannot be chained"),
        (")", 1, "unbalanced parenthesis"),
    ],
)
def test_errors_name_the_column(query: str, column: int, message: str) -> None:
    aliases = {"loop": ["x OR @loop"], "bad": ["a AND"], "empty": [], "titled": ["text:x"]}
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query, aliases)
    err = info.value
    assert message in err.detail
    assert err.column == column
    assert err.query == query
    assert f"at column {column}" in str(err)


@pytest.mark.parametrize(
    ("query", "column"),
    [("(" * 65 + "a" + ")" * 65, 65), ("NOT " * 65 + "a", 257), ("(" * 5000 + "a", 65), ("@deep0", 1)],
)
def test_nesting_is_bounded(query: str, column: int) -> None:
    aliases = {f"deep{i}": [f"@deep{i + 1}"] for i in range(100)}
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query, aliases)
    assert info.value.column == column
    assert "nested more than 64 levels" in info.value.detail


def test_nesting_within_the_bound_parses() -> None:
    assert shape("(" * 64 + "a" + ")" * 64) == "a"
    assert shape("@d0", {f"d{i}": [f"@d{i + 1}"] for i in range(20)} | {"d20": ["x"]}) == "x"


def test_error_caret_points_at_the_column() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("(Serbia OR Srbija) AND (China OR Kina")
    lines = str(info.value).splitlines()
    assert lines[1].index("(China") == lines[2].index("^")


_QUERY_ALPHABET = st.sampled_from(
    [*"()\"*@:/ -", "AND", "OR", "NOT", "NEAR", "NEAR/3", "NEAR/x", "title:", "text:", "foo:", "@fk3", "@x",
     "Serbia", "Србија", "FK-3", "drone", "a", "1", "Vučić", "\u0301", "½", "\t"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_QUERY_ALPHABET, max_size=14).map(" ".join)))
def test_parse_either_returns_a_query_or_raises_a_syntax_error(source: str) -> None:
    # The parser's fuzz target: arbitrary input never escapes as another exception.
    try:
        q = parse_query(source, ALIASES)
    except QuerySyntaxError as e:
        column = e.column
        assert 1 <= column <= len(source) + 1, column
        return
    assert isinstance(q, Query)
    assert q.source == source
    hash(q)
