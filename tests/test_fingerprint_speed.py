"""The fast fingerprint must store exactly what the original did, for every input.

Fingerprints are stored in SQLite and compared across versions, so ``to_bytes()`` and ``band_keys`` are
checked byte for byte against a frozen copy of the original implementation (tests/fingerprint_reference.py),
on the benchmark farm's texts (English, Serbian Latin and Cyrillic news) and on hostile strings. The shortcuts
the fast code takes (tokens from the folded text, the number scan without a regex when nothing needs one,
no np.unique, one xorshift moved onto the seeds, an optional pre-folded body) each have inputs below that
sit on their edge.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fingerprint_reference import reference
from watcher.fingerprint import MAX_TEXT_CHARS, Fingerprint, band_keys, fingerprint
from watcher.parse import parse_feed
from watcher.text import fold

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import farm as farmlib

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
KINDS = {"rss": "application/rss+xml", "atom": "application/atom+xml"}


def _fast(title: str, text: str, folded: str | None = None) -> tuple[bytes, list[int]]:
    fp = fingerprint(title, text, folded_text=folded)
    assert Fingerprint.from_bytes(fp.to_bytes()) == fp
    return fp.to_bytes(), band_keys(fp)


def _check(title: str, text: str) -> None:
    want = reference(title, text)
    assert _fast(title, text) == want
    assert _fast(title, text, fold(text)) == want


@pytest.fixture(scope="module")
def farm_items(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    farm = farmlib.generate(tmp_path_factory.mktemp("farm"), 12, seed=7, base=NOW)
    out = []
    for spec in farm.feeds:
        body = farm.path(spec).read_bytes()
        parsed = parse_feed(body, url=f"http://farm/{spec.filename}", headers={"content-type": KINDS[spec.kind]},
                            now=NOW)  # fmt: skip
        out.extend((i.title, i.text) for i in parsed.items)
    return out


def test_farm_items_fingerprint_as_before(farm_items: list[tuple[str, str]]) -> None:
    assert len(farm_items) > 300
    numbered = [fingerprint(t, x) for t, x in farm_items]
    assert sum(bool(f.numbers) for f in numbered) > len(farm_items) // 2  # the number scan really runs
    assert any(f.short for f in numbered) and any(not f.short for f in numbered)
    for title, text in farm_items:
        _check(title, text)


def test_farm_items_with_the_regex_cases(farm_items: list[tuple[str, str]]) -> None:
    """The farm writes no "1,021.37" and few "covid19": splice them in so the regex path runs on real text."""
    extra = ["1,021.37", "covid19", "A4", "3.5km", "2.", "7,", "5.x", "1..2", "9,8,7a1"]
    for k, (title, text) in enumerate(farm_items[:150]):
        words = text.split()
        at = k % max(1, len(words))
        words[at:at] = extra[: 1 + k % len(extra)]
        _check(title, " ".join(words))


HOSTILE = [
    ("", ""),
    ("", "   \n\t "),
    ("Headline only, five words here", ""),
    ("", "12 34 56"),
    ("1 2 3", "4,5 6.7 8,9.0 1e5 2nd 3rd"),
    ("Broj 7", "дванаест 12 killed, one injured; first batch of 3,000 arrived on 1.2.2024."),
    ("Вучић у Пекингу", "Председник Вучић је рекао да ће 12 авиона стићи 3. марта, друга тура 15."),
    ("Vučić", "Đorđe, Љубица и Њињић: 1,5 odsto, 2.5% rast; ½ ⅓ ² ① ٣ ३ 十"),
    ("NUL\x00title", "body\x00with\x00nuls 1\x002 3\x00.4"),
    ("\ud800 lone", "surrogates \udfff and \ud83d\ude00 pairs 5 \udc00x"),
    ("Tab\tnew\nline", "\u0085NEL\u2028LS\u2029PS\u00a0nbsp 4\u202f000 10\u2009000"),
    ("ﬁ ligature", "ﬀ ﬂ Å K ẞ İ ı ǅ 𝟘𝟙 ９ 5١ covid19 CH-92A HQ22 fk-3"),
    ("Numbers", " ".join(str(i) for i in range(500))),
    ("Words", "one two three four five six seven eight nine ten eleven twelve dozen " * 30),
    ("Mixed", "a1b2c3 1a2b3c 12th 1.5.7 1.5a.7 .5 5. ,5 5, 1,,2 1.,2 x1.2 1.2x 3-4 3/4 3:4"),
]


@pytest.mark.parametrize(("title", "text"), HOSTILE)
def test_hostile_strings_fingerprint_as_before(title: str, text: str) -> None:
    _check(title, text)


def test_huge_texts_fingerprint_as_before() -> None:
    wire = "The wire story goes on: 12 killed, 3,400 injured in 1.5 days; covid19 rate 2,5 %. "
    _check("Endless " * 500, wire * 2000)
    # the cut falls inside a character that folds to several (Љ -> lj), so a fold of the whole text
    # must not be used: its prefix of MAX_TEXT_CHARS would differ from the fold of the cut text
    cyr = "Љубљана Њујорк Џеп " * (MAX_TEXT_CHARS // 6)
    assert len(cyr) > MAX_TEXT_CHARS
    _check("Љ", cyr)
    _check("", "7 " * MAX_TEXT_CHARS)
    _check("x", "9" * (MAX_TEXT_CHARS + 5))


def test_repeated_shingles_do_not_change_the_signature() -> None:
    _check("", "same pair " * 200)
    _check("", "word " * 40)
    _check("Solo", "only")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=400))
def test_any_text_fingerprints_as_before(title: str, text: str) -> None:
    _check(title, text)


# Pieces that meet at the edges the fast number scan must get right: letters running into digits, digits
# joined by one separator, number words, characters that fold to several letters or to digits.
_PIECES = [*"abcxyz019 .,-\n", "one", "first", "dva", "Š", "ђ", "Љ", "½", "²", "1,0", "a1", "\x00"]
_NEWSY = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)


@settings(max_examples=300, deadline=None)
@given(_NEWSY, _NEWSY)
def test_number_like_text_fingerprints_as_before(title: str, text: str) -> None:
    _check(title, text)
