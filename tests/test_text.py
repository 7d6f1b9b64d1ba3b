from __future__ import annotations

import re
import unicodedata

import pytest
from anyascii import anyascii
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.text import (
    _TABLE_CANDIDATES,
    Token,
    TokenLocator,
    fold,
    is_glue,
    snippet,
    split_words,
    token_text,
    tokenize,
    tokens,
    vocabulary,
)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Vucic", "vucic"),
        ("Vučić", "vucic"),
        ("VUČIĆ", "vucic"),
        ("Вучић", "vucic"),
        ("ВУЧИЋ", "vucic"),
        ("Србија", "srbija"),
        ("Đilas", "djilas"),
        ("đilas", "djilas"),
        ("Ђилас", "djilas"),
        ("Љубљана", "ljubljana"),
        ("Њујорк", "njujork"),
        ("Џамија", "dzamija"),
        ("Жељко Шуња", "zeljko sunja"),
        ("Хрватска, Цетиње", "hrvatska, cetinje"),
        ("Ćirilica ćirilica", "cirilica cirilica"),
        ("Crème Brûlée", "creme brulee"),
        ("c\u030cao", "cao"),  # decomposed input: the combining caron goes
        ("ﬁnance", "finance"),  # compatibility ligature
        ("Straße", "strasse"),
        ("北京", "beijing"),  # other scripts as anyascii does
        ("Ελλάδα", "ellada"),
        ("ФК-3", "fk-3"),
        ("Serbia's", "serbia's"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Serbia's drones", ["serbia", "s", "drones"]),
        ("FK-3, HQ22 and CH 92A", ["fk", "3", "hq22", "and", "ch", "92a"]),
        ("«Вучић» — Srbija…", ["vucic", "srbija"]),
        ("e-mail: a.b@c.rs", ["e", "mail", "a", "b", "c", "rs"]),
        ("", []),
        ("  \n\t ", []),
        ("½ mile", ["1", "2", "mile"]),
        ("Tom’s", ["tom", "s"]),
    ],
)
def test_tokens(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected
    assert [t.text for t in tokenize(text)] == expected


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("Vučić, Srbija", [("vucic", "Vučić"), ("srbija", "Srbija")]),
        ("«Вучић» и FK-3", [("vucic", "Вучић"), ("i", "и"), ("fk", "FK"), ("3", "3")]),
        ("Đilas’s c\u030cas", [("djilas", "Đilas"), ("s", "s"), ("cas", "c\u030cas")]),
        ("trail c\u030c", [("trail", "trail"), ("c", "c\u030c")]),  # marks after the last letter stay on it
        ("½", [("1", "½"), ("2", "½")]),
        ("ASCII only, fast path", [("ascii", "ASCII"), ("only", "only"), ("fast", "fast"), ("path", "path")]),
    ],
)
def test_tokenize_offsets_point_into_the_original(text: str, spans: list[tuple[str, str]]) -> None:
    got = tokenize(text)
    assert [(t.text, text[t.start : t.end]) for t in got] == spans
    assert all(isinstance(t, Token) for t in got)


@pytest.mark.parametrize(
    ("gap", "glued"),
    [("", True), ("-", True), (" ", True), ("\u2013", True), ("\u00a0", True), (", ", False), (".", False)],
)
def test_is_glue(gap: str, glued: bool) -> None:
    assert is_glue(gap) is glued


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),  # no lone surrogates: they cannot come from decoded feeds
        st.sampled_from("ČčĆćĐđŠšŽžЂђЋћЧчЖжШшЉљЊњЏџЈјХхЦцАБВГДabcXYZ019 -.,'’«»\u0301\u030c½ﬁß"),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_fold_is_idempotent(s: str) -> None:
    assert fold(fold(s)) == fold(s)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_tokens_of_folded_text_are_the_tokens_of_the_text(s: str) -> None:
    assert tokens(fold(s)) == tokens(s)
    assert tokens(s) == re.findall(r"[a-z0-9]+", fold(s))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_fold_is_character_local(s: str) -> None:
    # The translate cache and per-run tokenizing rely on this (see the watcher/text.py docstring).
    assert fold(s) == "".join(fold(c) for c in s)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_tokenize_agrees_with_tokens_and_offsets_refold(s: str) -> None:
    got = tokenize(s)
    assert [t.text for t in got] == tokens(s)
    for t in got:
        assert 0 <= t.start < t.end <= len(s)
        assert t.text in "".join(tokens(s[t.start : t.end]))
    assert [t.start for t in got] == sorted(t.start for t in got)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_locator_and_vocabulary_agree_with_tokenize(s: str) -> None:
    expected = tokenize(s)
    forward, backward = TokenLocator(s), TokenLocator(s, *split_words(s))
    for i in range(len(expected)):  # forward lookups resume from the last one; backward ones restart
        assert forward[i] == expected[i]
        assert backward[len(expected) - 1 - i] == expected[len(expected) - 1 - i]
    locator = TokenLocator(s)
    with pytest.raises(IndexError):
        locator[len(expected)]
    assert vocabulary(s, "extra words") == {t.text for t in expected} | {"extra", "words"}


def test_tokenize_with_unusual_whitespace() -> None:
    s = "FK\u00853\u2003Вучић\u3000x"
    assert [(t.text, s[t.start : t.end]) for t in tokenize(s)] == [
        ("fk", "FK"), ("3", "3"), ("vucic", "Вучић"), ("x", "x"),
    ]  # fmt: skip
    assert fold("a\u0085b") == "a b"


# --- the fast tokenizer against a slow reference ----------------------------------------------------------

_REF_LOWER = {"ђ": "dj", "ћ": "c", "ч": "c", "ж": "z", "ш": "s", "љ": "lj", "њ": "nj", "џ": "dz", "ј": "j",
              "х": "h", "ц": "c", "đ": "dj"}  # fmt: skip
_REF_SERBIAN = str.maketrans(_REF_LOWER | {k.upper(): v.capitalize() for k, v in _REF_LOWER.items()})


def _reference_fold(s: str) -> str:
    """fold() as its contract states it, one character at a time, with no table or cache."""
    out = []
    for ch in s:
        bare = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        folded = str(anyascii(bare.translate(_REF_SERBIAN))).lower()
        out.append(" " if not folded and ch.isspace() else folded)
    return "".join(out)


def _reference_tokens(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _reference_fold(s))


_FAST_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(_TABLE_CANDIDATES + "ЫЭЮЯыэюяßæ½€©\u0301\u00ad\ufffe\u0085 -.,'"),
        st.sampled_from("abcdefXYZ0123456789 "),
    ),
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@given(_FAST_TEXT)
def test_fast_tokens_equal_the_reference(s: str) -> None:
    expected = _reference_tokens(s)
    assert tokens(s) == expected
    assert token_text(s).split() == expected
    assert fold(s) == _reference_fold(s)
    folded = " " + token_text(s)
    for t in expected:
        for n in (1, len(t)):
            assert " " + t[:n] in folded


@settings(max_examples=300, deadline=None)
@given(_FAST_TEXT)
def test_locator_spans_agree_with_tokenize(s: str) -> None:
    expected = tokenize(s)
    locator = TokenLocator(s)
    assert [locator.span(i) for i in range(len(expected))] == [(t.start, t.end) for t in expected]
    with pytest.raises(IndexError):
        locator.span(len(expected))


@pytest.mark.parametrize(
    "s",
    ["Đoković i Љубљана", "naïve café", "c\u030cas", "½ mile", "soft\u00adhyphen", "a\ufffeb", "北京 x", "ﬁ"],
)
def test_fast_tokens_examples(s: str) -> None:
    assert tokens(s) == _reference_tokens(s)
    assert [(t.start, t.end) for t in tokenize(s)] == [TokenLocator(s).span(i) for i in range(len(tokens(s)))]


@settings(max_examples=300, deadline=None)
@given(_FAST_TEXT, st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=3))
def test_snippet_squeezes_whitespace_like_a_regex(s: str, ranges: list[tuple[int, int]]) -> None:
    got = snippet(s, [(a, b) for a, b in ranges if a < b <= len(s)])
    assert got == re.sub(r"\s+", " ", got).strip()
