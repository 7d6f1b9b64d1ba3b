"""Text folding and tokenizing shared by matching and dedup.

Contract:

* ``fold(s)`` maps case, diacritic and script variants of a word to one lower-case ASCII form, so that
  Vučić, VUČIĆ, Vucic and Вучић are equal. Per character: NFKD, drop combining marks, Serbian Cyrillic (and
  Latin đ) by the Serbian table (ђ/đ→dj, ћ/ч→c, ж→z, ш→s, љ→lj, њ→nj, џ→dz, ј→j, х→h, ц→c), everything else
  by anyascii, then lower-case. Punctuation and spacing are kept (anyascii's ASCII form), so dedup can use it.
* A token is a maximal run of ``[a-z0-9]`` in the folded text; everything else separates tokens.
  ``tokens(s)`` gives the token strings, ``tokenize(s)`` the same tokens with offsets into the original.

Folding is character-local (every step maps one code point on its own; the only cross-character step of
NFKD, reordering combining marks, is moot because they are dropped), and every whitespace character folds
to whitespace. That is what makes the speed tricks below sound: a per-code-point cache used through
``str.translate``; a C-level tokenizer (a charmap codec, see ``token_text``) that handles whole texts without
Python code per word; a per-word cache for offsets when a text cannot be aligned character for character.
``tests/test_text.py`` checks both properties, and the fast paths against a slow reference, with hypothesis.

``snippet()`` lives here too: it cuts a window of original text and wraps ranges in models.MARK_OPEN /
MARK_CLOSE.

Joined codes (FK-3 = FK 3 = FK3) are *not* handled here: the text keeps its real tokens (fk, 3) and the
query side expands a code into its joined and split spellings, requiring the split pieces to touch through a
single hyphen or space (see ``GLUE`` and watcher/query.py). Keeping the token stream untouched means a plain
word search such as ``Covid`` still finds "Covid-19".
"""

from __future__ import annotations

import bisect
import codecs
import re
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import NamedTuple

from anyascii import anyascii

from watcher.models import MARK_CLOSE, MARK_OPEN

_SERBIAN = str.maketrans(
    {
        "ђ": "dj", "Ђ": "Dj", "ћ": "c", "Ћ": "C", "ч": "c", "Ч": "C", "ж": "z", "Ж": "Z",
        "ш": "s", "Ш": "S", "љ": "lj", "Љ": "Lj", "њ": "nj", "Њ": "Nj", "џ": "dz", "Џ": "Dz",
        "ј": "j", "Ј": "J", "х": "h", "Х": "H", "ц": "c", "Ц": "C", "đ": "dj", "Đ": "Dj",
    }
)  # fmt: skip
_NOT_TOKEN = re.compile(r"[^a-z0-9]+")
_TOKEN = re.compile(r"[a-z0-9]+")
# Runs of characters that may belong to a token: ASCII letters/digits and any non-ASCII character. ASCII
# punctuation and spaces always fold to themselves, so they are safe cut points for per-run folding.
_RUN = re.compile(r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")

# A code split in the text counts as one code only across one of these (FK-3, FK 3, FK–3), not across
# a comma or a full stop ("FK. 3 people").
GLUE = frozenset(" \t\u00a0\u2009\u202f-\u2010\u2011\u2012\u2013\u2212")

SNIPPET_CHARS = 200
_SNIPPET_LEAD = 60  # characters of context kept before the first marked range
_NOT_MARK = str.maketrans("", "", MARK_OPEN + MARK_CLOSE)
_CACHE_LIMIT = 200_000  # distinct code points remembered; past this we fold without caching


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = str(anyascii(bare.translate(_SERBIAN))).lower()
    # anyascii drops NEL (U+0085); keeping it a space keeps "split on whitespace" a valid token boundary.
    return " " if not folded and ch.isspace() else folded


class _FoldTable(dict[int, str]):
    """Code point -> folded string, filled on first use; ``str.translate`` consults it in C."""

    def __missing__(self, cp: int) -> str:
        value = self._compute(chr(cp))
        if len(self) < _CACHE_LIMIT:
            self[cp] = value
        return value

    def _compute(self, ch: str) -> str:
        return _fold_char(ch)


class _SplitTable(_FoldTable):
    """Like _FoldTable, but anything that is not a token character becomes a space, so that
    ``s.translate(table).split()`` is the whole tokenizer: one C-level pass plus a split."""

    def _compute(self, ch: str) -> str:
        return _NOT_TOKEN.sub(" ", _fold_char(ch))


_FOLD = _FoldTable()
_SPLIT = _SplitTable()
# ASCII input takes CPython's fast translate path when every value is one ASCII character.
_ASCII_SPLIT = str.maketrans(
    {chr(c): (chr(c).lower() if chr(c).isalnum() else " ") for c in range(128)},
)


# --- the C-level tokenizer ------------------------------------------------------------------------------
#
# Non-ASCII text is the norm (Serbian, typographic quotes and dashes), so tokenizing must not run Python code
# per word. A charmap codec, the kind the standard library's cp125x codecs are made of, maps each character of
# the scripts news text uses to one byte in C; one bytes.translate then gives each byte its folded form (a
# token character, a space, or deleted), the four Serbian digraphs (dj, lj, nj, dz) come back with one
# replace each, and str.split does the rest. Characters outside the table reach an error handler that folds
# them with the per-code-point cache, so the fast path is exact for every input, not just for the table.

_TABLE_CANDIDATES = (
    "ČčĆćŠšŽžĐđ"
    "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШабвгдђежзијклљмнњопрстћуфхцчџш"
    "\u00a0\u00ad\u200b\u2009\u202f\u2010\u2011\u2013\u2014\u2212\u2018\u2019\u201a\u201c\u201d\u201e"
    "«»…•·"
    "éèêëáàâäãåçíìîïóòôöõúùûüñýøłśźżąęńőű"
    "ÉÖÜÄÁÓÍŁŚŻ"
)  # fmt: skip
_DIGRAPHS = ("dj", "lj", "nj", "dz")  # expansions worth a replace pass: Serbian writes them all the time
_FOLD_ERRORS = "watcher.text.fold"
_ALIGN_ERRORS = "watcher.text.align"
_NO_ALIGNMENT = 255


def _fold_unmapped(error: UnicodeError) -> tuple[bytes, int]:
    """Codec error handler: a run of characters the table lacks, folded one code point at a time."""
    assert isinstance(error, UnicodeEncodeError)
    run = error.object[error.start : error.end]
    return run.translate(_SPLIT).encode("ascii"), error.end


def _build_codec() -> tuple[str, bytes, bytes, tuple[tuple[bytes, bytes], ...]]:
    """The decoding table, the byte translation, the bytes to delete, and (placeholder, digraph) pairs."""
    chars: list[str] = []
    trans = bytearray(b" " * 256)
    delete = bytearray()
    placeholders: dict[str, int] = {}
    for c in range(128):
        trans[c] = ord(chr(c).lower()) if chr(c).isalnum() else 32
    for ch in dict.fromkeys(_TABLE_CANDIDATES):
        if len(chars) == 127:  # byte 255 stays free: _align_unmapped's "no alignment" marker
            break
        folded = _SPLIT[ord(ch)]
        byte = 128 + len(chars)
        if folded == "":
            delete.append(byte)
        elif folded.isspace():
            trans[byte] = 32
        elif len(folded) == 1:
            trans[byte] = ord(folded)
        elif folded in _DIGRAPHS:
            trans[byte] = placeholders.setdefault(folded, byte)
        else:
            continue  # left to the error handler
        chars.append(ch)
    table = "".join(map(chr, range(128))) + "".join(chars).ljust(128, "\ufffe")  # U+FFFE: unmapped
    digraphs = tuple((bytes([b]), d.encode("ascii")) for d, b in placeholders.items())
    return table, bytes(trans), bytes(delete), digraphs


def _align_unmapped(error: UnicodeError) -> tuple[bytes, int]:
    """Codec error handler for ``_aligned``: one byte per character, NUL where alignment is impossible."""
    assert isinstance(error, UnicodeEncodeError)
    run = error.object[error.start : error.end]
    return bytes(map(_align_byte, map(_SPLIT.__getitem__, map(ord, run)))), error.end


def _align_byte(folded: str) -> int:
    if folded.isalnum():  # some token characters, all in one token: 1 byte keeps the token boundaries
        return 97
    return 32 if folded.isspace() else _NO_ALIGNMENT  # "" joins its neighbours, "1 2" splits a character


codecs.register_error(_FOLD_ERRORS, _fold_unmapped)
codecs.register_error(_ALIGN_ERRORS, _align_unmapped)
_TABLE, _TRANS, _DELETE, _PLACEHOLDERS = _build_codec()
_CODEC = codecs.charmap_build(_TABLE)
_ALIGN = bytes(
    0 if b in _DELETE or b == _NO_ALIGNMENT else 32 if t == 32 else 97 for b, t in enumerate(_TRANS)
)


def _aligned(s: str) -> str | bytes | None:
    """A string as long as ``s`` whose whitespace-separated runs are exactly the tokens of ``s``,
    character for character; None when no such string exists (a character that folds to nothing or to
    several tokens, such as a combining mark or "½")."""
    if s.isascii():
        return s.translate(_ASCII_SPLIT)
    data = codecs.charmap_encode(s, _ALIGN_ERRORS, _CODEC)[0].translate(_ALIGN)
    return None if 0 in data else data


def token_text(s: str) -> str:
    """The folded ASCII text of ``s`` with every character that is not part of a token turned into
    whitespace: ``token_text(s).split() == tokens(s)``, and ``" " + p in " " + token_text(s)`` tells
    whether some token starts with ``p`` without splitting anything."""
    if s.isascii():
        return s.translate(_ASCII_SPLIT)
    data = codecs.charmap_encode(s, _FOLD_ERRORS, _CODEC)[0].translate(_TRANS, _DELETE)
    for placeholder, digraph in _PLACEHOLDERS:
        if placeholder in data:
            data = data.replace(placeholder, digraph)
    return data.decode("ascii")


class Token(NamedTuple):
    """A folded token and where it came from: ``original[start:end]`` is the word as written."""

    text: str
    start: int
    end: int


def fold(s: str) -> str:
    """Case-, diacritic- and script-folded ASCII form of ``s`` (idempotent)."""
    if s.isascii():
        return s.lower()
    return s.translate(_FOLD)


def tokens(s: str) -> list[str]:
    """The folded tokens of ``s`` in order: the hot path, run once per item and field."""
    return token_text(s).split()


def split_words(s: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """``s`` split on whitespace, with each word's tokens: flattened, that is ``tokens(s)``. A caller that
    also wants a TokenLocator passes both on, so the text is split and looked up only once."""
    words = s.split()
    return words, list(map(_WORD_TOKENS.__getitem__, words))


def vocabulary(*texts: str) -> frozenset[str]:
    """The distinct tokens of all ``texts``: what the matcher's set checks and inverted index need."""
    return frozenset(" ".join(map(token_text, texts)).split())


def tokenize(s: str) -> list[Token]:
    """``tokens(s)`` with offsets into ``s``, for snippets and for checking what separates two tokens.

    A token that comes from part of a character ("½" gives 1 and 2) gets that character's span; combining
    marks after a token's last letter are included in its span, so highlighting never cuts a letter in two.
    """
    return list(iter_tokenize(s))


def iter_tokenize(s: str) -> Iterator[Token]:
    """``tokenize`` lazily, for callers that only need offsets of the first few tokens."""
    if s.isascii():
        for m in _TOKEN.finditer(s.lower()):
            yield Token(m.group(), m.start(), m.end())
        return
    base = 0
    for word in s.split():  # the same whitespace as tokens(), so the two always agree
        base = s.find(word, base)
        for t, a, b in _WORD_SPANS[word]:
            yield Token(t, base + a, base + b)
        base += len(word)


class TokenLocator:
    """Offsets of the tokens of one string, found on demand: ``locator[i]`` is ``tokenize(s)[i]``.

    A snippet needs the offsets of a handful of tokens, often deep in a long body. Usually a string aligned
    with the source character for character has one whitespace-separated run per token (``_aligned``), so
    the offset of token i comes from ``split(None, i)`` on it (C speed, several times faster than a regex
    scan). Otherwise token counts per whitespace-separated word come from a cache and the offset of word j
    from splitting the source the same way. Either way no Python code runs per token that comes before.
    """

    __slots__ = ("_aligned", "_ends", "_known", "_words", "source")

    def __init__(
        self, source: str, words: list[str] | None = None, per_word: list[tuple[str, ...]] | None = None
    ) -> None:
        """``words`` and ``per_word``, if given, must be ``split_words(source)``."""
        self.source = source
        self._words = words or []
        # _ends[j] = tokens in words 0..j
        self._ends = None if per_word is None else list(accumulate(map(len, per_word)))
        self._known = (0, 0)  # (j, start of word j) last located: the next lookup splits from there
        self._aligned = _aligned(source) if per_word is None else None

    def span(self, i: int) -> tuple[int, int]:
        """``(start, end)`` of ``self[i]``, without folding the token again."""
        if self._aligned is not None:
            return self._from_aligned(i, self._aligned)
        _, start, end = self[i]
        return start, end

    def __getitem__(self, i: int) -> Token:
        if self._aligned is not None:
            start, end = self._from_aligned(i, self._aligned)
            return Token(token_text(self.source[start:end]), start, end)
        if self._ends is None:
            self._words = self.source.split()
            self._ends = list(accumulate(map(len, map(_WORD_TOKENS.__getitem__, self._words))))
        if i < 0 or not self._ends or i >= self._ends[-1]:
            raise IndexError(i)
        j = bisect.bisect_right(self._ends, i)
        known_j, known_start = self._known if self._known[0] <= j else (0, 0)
        rest = self.source[known_start:] if known_start else self.source
        start = len(self.source) - len(rest.split(None, j - known_j)[-1])
        self._known = (j, start)
        t, a, b = _WORD_SPANS[self._words[j]][i - (self._ends[j - 1] if j else 0)]
        return Token(t, start + a, start + b)

    def _from_aligned(self, i: int, aligned: str | bytes) -> tuple[int, int]:
        if i < 0:
            raise IndexError(i)
        known_i, known_start = self._known if self._known[0] <= i else (0, 0)
        rest = aligned[known_start:] if known_start else aligned
        pieces = rest.split(None, i - known_i)
        if len(pieces) <= i - known_i:
            raise IndexError(i)
        start = len(aligned) - len(pieces[-1])
        self._known = (i, start)
        # The aligned text's only whitespace is " ", so the token ends at the next one: no copy of the rest.
        end = aligned.find(b" ", start) if isinstance(aligned, bytes) else aligned.find(" ", start)
        return start, end if end >= 0 else len(aligned)


def _tokenize_word(s: str) -> list[Token]:
    """Tokens of a string with offsets, character by character: the uncached slow path."""
    out: list[Token] = []
    for m in _RUN.finditer(s):
        run = m.group()
        start = m.start()
        if run.isascii():
            out.append(Token(run.lower(), start, m.end()))
            continue
        folded = run.translate(_SPLIT)
        if folded.isalnum():  # the common case: one word in, one token out
            out.append(Token(folded, start, m.end()))
            continue
        _tokenize_run(s, run, start, m.end(), out)
    return out


def _tokenize_run(s: str, run: str, start: int, end: int, out: list[Token]) -> None:
    """A run holding non-ASCII punctuation or characters that fold to several pieces."""
    pieces: list[str] = []
    origin: list[int] = []  # origin[k] = index in s of the character that produced folded char k
    for i, ch in enumerate(run):
        piece = _SPLIT[ord(ch)]
        pieces.append(piece)
        origin.extend([start + i] * len(piece))
    for m in _TOKEN.finditer("".join(pieces)):
        a = origin[m.start()]
        b = origin[m.end() - 1] + 1
        while b < end and _SPLIT[ord(s[b])] == "":
            b += 1
        out.append(Token(m.group(), a, b))


class _WordCache(dict[str, tuple[Token, ...]]):
    """Whitespace-free word -> its tokens with offsets relative to the word; cleared when full, since the
    vocabulary of a long-running daemon is unbounded (numbers, URLs, typos)."""

    def __missing__(self, word: str) -> tuple[Token, ...]:
        value = tuple(_tokenize_word(word))
        if len(self) >= _WORD_CACHE_LIMIT:
            self.clear()
        self[word] = value
        return value


class _WordTokenCache(dict[str, tuple[str, ...]]):
    def __missing__(self, word: str) -> tuple[str, ...]:
        value = tuple(word.translate(_SPLIT).split())
        if len(self) >= _WORD_CACHE_LIMIT:
            self.clear()
        self[word] = value
        return value


_WORD_CACHE_LIMIT = 50_000
_WORD_SPANS = _WordCache()
_WORD_TOKENS = _WordTokenCache()


def is_glue(gap: str) -> bool:
    """Whether two pieces of a code separated by ``gap`` in the original text count as one code."""
    return gap == "" or (len(gap) == 1 and gap in GLUE)


def snippet(source: str, ranges: Sequence[tuple[int, int]], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``source`` around the first range, ranges wrapped in marks.

    Cuts fall on spaces where possible, cut ends get "…", and whitespace runs become one space so a
    snippet from a multi-line body still reads as one line.
    """
    ordered = sorted(ranges)
    first_start, first_end = ordered[0] if ordered else (0, 0)
    start = max(0, first_start - _SNIPPET_LEAD)
    if start > 0:
        space = source.find(" ", start, first_start)
        start = space + 1 if space >= 0 else start
    end = max(min(len(source), start + width), first_end)
    if end < len(source):
        space = source.rfind(" ", first_end, end)
        end = space if space > first_end else end
    window = source[start:end]
    # Marks already in the text would confuse every renderer; they are rare, so check once.
    clean = (lambda x: x.translate(_NOT_MARK)) if MARK_OPEN in window or MARK_CLOSE in window else str
    parts: list[str] = ["…"] if start > 0 else []
    pos = start
    for a, b in ordered:
        a, b = max(a, pos), min(b, end)
        if a >= b:
            continue
        parts += [clean(source[pos:a]), MARK_OPEN, clean(source[a:b]), MARK_CLOSE]
        pos = b
    parts.append(clean(source[pos:end]))
    if end < len(source):
        parts.append("…")
    if window.isprintable() and "  " not in window:  # no whitespace but single spaces: nothing to squeeze
        return "".join(parts).strip()
    return " ".join("".join(parts).split())  # splits where \s+ would match, several times faster
