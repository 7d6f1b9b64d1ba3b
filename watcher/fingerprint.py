"""Similarity fingerprints for spotting the same story republished by other outlets.

Chosen by measurement on tests/data/dedup_labelled.json (``python bench/bench_dedup.py --quality``):

* MinHash-128 over word bigrams: syndicated copies estimate >= 0.62 (exact Jaccard >= 0.71), look-alike
  stories <= 0.50, and those that come that close are all caught by the number guard below; without a
  number conflict no look-alike exceeds 0.19. LSH bands of four 16-bit minimums make a candidate of a
  J=0.2 pair with probability 0.0005, so the SQLite index stays selective.
* SimHash-64 over the same bigrams also separates long bodies (copies <= 12 bits apart, look-alikes
  >= 19), but overlaps once titles and short items are included (copies up to 17, distinct from 15), and
  an index for "12 of 64 bits may differ" needs 13 pigeonhole blocks of ~5 bits, one of which a random
  pair shares with probability ~0.34: hardly any selectivity left.
* datasketch's MinHash.update_batch costs ~170 us per item for the signature alone; this numpy version
  ~50 us, and it needs nothing pickled to be stored. A whole fingerprint with its band keys costs ~125 us
  of CPU per farm item, ~105 us when the caller passes the folded body (``python
  bench/bench_fingerprint.py``, which also checks the output against the frozen original).

A fingerprint holds four things, each feeding one precision rule in :func:`is_near_duplicate`:

* a b-bit MinHash signature (``SIGNATURE_SIZE`` minimums, low 16 bits kept) of the body's bigrams, or of
  title + body when the body is too short to stand alone;
* the exact set of the title's token hashes: titles are short, so an estimate would be too coarse;
* numbers with their neighbouring words ("12 killed" -> (killed, 12)): the same context carrying
  different numbers is the mark of a different story written from the same template;
* the body length, which decides which rule applies.

Everything is derived with blake2b and fixed constants, never Python's salted ``hash()``, so a fingerprint
stored by one process compares equal to one computed by the next.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from watcher.text import fold, tokens

SIGNATURE_SIZE = 128  # minimums kept; standard error of the estimate ~0.04 near the thresholds
BANDS = 20  # LSH bands over the first BANDS * ROWS minimums
ROWS = 4  # candidate probability 0.94 at J=0.6, 0.996 at J=0.7, 0.0005 at J=0.2
SHORT_BODY_TOKENS = 30  # bodies below this are judged together with their title
MAX_TITLE_TOKENS = 48
TITLE_KEY_MIN_TOKENS = 5  # shorter titles ("Weather", "Markets today") recur daily: no title band key
MAX_NUMBERS = 96
MAX_TEXT_CHARS = 40_000  # ~6k words: bounds time and the (SIGNATURE_SIZE x shingles) array for huge bodies
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<BBHBB")  # version, flags, body tokens, title tokens, numbers
_FLAG_SHORT = 1
_FLAG_EMPTY = 2
_EMPTY_SLOT = 0xFFFF


def _seeds(label: str, count: int) -> npt.NDArray[np.uint64]:
    digests = (hashlib.blake2b(f"{label}{i}".encode(), digest_size=8).digest() for i in range(count))
    return np.array([int.from_bytes(d, "little") for d in digests], dtype=np.uint64).reshape(count, 1)


# One seed per permutation, mixed into each shingle by the splitmix64 finaliser (a bijection on 64-bit
# words). A first try with (a*x + b) mod 2**61-1 and small a wrapped too rarely to shuffle the order:
# minimums then tracked the smallest shingle and look-alike market reports estimated 0.93 for a true 0.46.
_SEEDS = _seeds("watcher-minhash", SIGNATURE_SIZE)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _h32(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")


def _h16(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=2, person=b"ctx").digest(), "little")


class _HashCache(dict[str, int]):
    """String -> hash, kept across items: news vocabulary is Zipfian, so most words of an item were hashed
    before. A dict subclass so that a hit is a C-level lookup (``map(cache.__getitem__, words)``) and only
    a miss runs Python. Cleared when full, which bounds memory whatever the feeds say."""

    __slots__ = ("_hash",)

    def __init__(self, hash_: Callable[[str], int]) -> None:
        super().__init__()
        self._hash = hash_

    def __missing__(self, key: str) -> int:
        if len(self) >= _CACHE_MAX:
            self.clear()
        value = self[key] = self._hash(key)
        return value


_CACHE_MAX = 50_000  # entries per cache: a few MB each at most in a long-running worker (five caches)
_WORD_HASHES = _HashCache(_h32)
# Number-context hashes: a number's value (of a number word: of its digits), and the words before and
# after it; and whether a word is a word (1) or a number (0).
_VALUE_HASHES = _HashCache(lambda w: _h16(_NUMBER_WORDS.get(w, w).replace(".", "").replace(",", "")))
_IS_WORD = _HashCache(lambda w: int(_NUMBER_WORDS.get(w, w).isalpha()))
_BEFORE_HASHES = _HashCache(lambda w: _h16("<" + w))
_AFTER_HASHES = _HashCache(lambda w: _h16(">" + w))


def _word_hash(w: str) -> int:
    return _WORD_HASHES[w]


# Number words become digits so "five killed" and "5 killed" agree and "first batch"/"second batch"
# disagree. English and Serbian (folded), the languages the watcher mostly reads.
_NUMBER_WORDS: dict[str, str] = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "jedan": "1", "jedna": "1", "jedno": "1", "dva": "2", "dve": "2", "tri": "3", "cetiri": "4",
    "pet": "5", "sest": "6", "sedam": "7", "osam": "8", "devet": "9", "deset": "10",
    "prvi": "1st", "prva": "1st", "prvo": "1st", "drugi": "2nd", "druga": "2nd", "drugo": "2nd",
    "treci": "3rd", "treca": "3rd", "trece": "3rd",
}  # fmt: skip
_NEGATIONS = frozenset(
    {"not", "no", "never", "without", "nor", "cannot", "ne", "nece", "nije", "nisu", "nema", "bez", "nikad"}
)
_NEGATION_HASHES = frozenset(_h32(w) for w in _NEGATIONS)
# Whole numbers with their separators, so "1,021.37" is one value; separators are dropped afterwards so
# the Serbian "1.021,37" and the English "1,021.37" agree.
_NUMBER_OR_WORD = re.compile(r"\d+(?:[.,]\d+)*[a-z]*|[a-z]+")
# A folded (ASCII, lower-case) text reduced to what _NUMBER_OR_WORD distinguishes: digits, the separators
# that may join them, letters, and everything else.
_SHAPE = str.maketrans(
    {chr(c): "0" if chr(c).isdigit() else "a" if chr(c).isalpha() else "." if chr(c) in ".," else " "
     for c in range(128)}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A storable summary of one item; compare two with :func:`is_near_duplicate`."""

    signature: bytes  # SIGNATURE_SIZE little-endian uint16
    title: tuple[int, ...]  # sorted distinct 32-bit hashes of the folded title tokens
    numbers: tuple[int, ...]  # sorted distinct (context hash << 16 | number hash)
    body_tokens: int
    short: bool  # signature covers title + body because the body alone is too short
    empty: bool  # nothing to compare: no title and no body tokens

    def to_bytes(self) -> bytes:
        flags = (_FLAG_SHORT if self.short else 0) | (_FLAG_EMPTY if self.empty else 0)
        head = _HEADER.pack(
            _FORMAT_VERSION, flags, min(self.body_tokens, 0xFFFF), len(self.title), len(self.numbers)
        )
        title = struct.pack(f"<{len(self.title)}I", *self.title)
        numbers = struct.pack(f"<{len(self.numbers)}I", *self.numbers)
        return head + self.signature + title + numbers

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of :meth:`to_bytes`; raises ValueError on data it did not write."""
        if len(data) < _HEADER.size:
            raise ValueError("fingerprint too short")
        version, flags, body_tokens, n_title, n_numbers = _HEADER.unpack_from(data)
        if version != _FORMAT_VERSION:
            raise ValueError(f"unknown fingerprint format version {version}")
        sig_end = _HEADER.size + 2 * SIGNATURE_SIZE
        title_end = sig_end + 4 * n_title
        if len(data) != title_end + 4 * n_numbers:
            raise ValueError(f"fingerprint length {len(data)} does not match its header")
        return cls(
            signature=bytes(data[_HEADER.size : sig_end]),
            title=struct.unpack_from(f"<{n_title}I", data, sig_end),
            numbers=struct.unpack_from(f"<{n_numbers}I", data, title_end),
            body_tokens=body_tokens,
            short=bool(flags & _FLAG_SHORT),
            empty=bool(flags & _FLAG_EMPTY),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NearDupSettings:
    """Thresholds, tuned on the labelled set so that no look-alike pair merges (precision first).

    Measured there: long copies score >= 0.62, look-alikes <= 0.50 and every one above 0.19 differs in
    its numbers; headline look-alikes reach 0.75 (one word changed) and 0.875 (a negation added).
    """

    body_threshold: float = 0.6  # MinHash estimate of the bodies' bigram Jaccard, both bodies long
    short_threshold: float = 0.7  # the same over title + body when either body is short
    short_title_threshold: float = 0.5  # ...and the titles must also share this much
    title_only_threshold: float = 0.8  # exact title-token Jaccard when one side has no usable body
    containment_threshold: float = 0.9  # share of the shorter body found in the longer (lead-only feeds)
    containment_title_threshold: float = 0.5  # ...accepted only with titles this close
    min_title_tokens: int = 5  # shorter titles ("Weather") identify nothing; keep >= TITLE_KEY_MIN_TOKENS
    number_guard: bool = True  # same context, different numbers: different stories
    negation_guard: bool = True  # a negation in only one of two compared titles: different statements
    window: timedelta = timedelta(days=14)  # how long a story stays open for new copies


def _number_or_words(folded: str, folded_tokens: list[str]) -> list[str]:
    """``_NUMBER_OR_WORD.findall(folded)``, where ``folded_tokens`` is ``tokens(folded)``.

    The two differ only where a letter runs into a digit ("covid19": one token, a word and a number) or a
    full stop or comma joins two digits ("1,021.37": three tokens, one number). Most texts have neither,
    and a C-level translate finds out in a fraction of what the regex scan costs.
    """
    shape = folded.translate(_SHAPE)
    if "a0" in shape or "0.0" in shape:
        return _NUMBER_OR_WORD.findall(folded)
    return folded_tokens


def _number_pairs(words: list[str]) -> list[int]:
    """(context << 16 | value) pairs of the numbers among a folded text's ``_NUMBER_OR_WORD`` matches."""
    # Words are [a-z]+ and numbers start with a digit (number words are numbers too), so a cached flag per
    # word tells them apart without a Python loop; finding the neighbours is then a find/rfind on the
    # flags, skipping other numbers ("won 2-1 in"). Number words become digits only where they are numbers.
    flags = bytes(map(_IS_WORD.__getitem__, words))
    pairs: list[int] = []
    i = flags.find(0)
    while i >= 0:
        value = _VALUE_HASHES[words[i]]
        before = flags.rfind(1, 0, i)
        after = flags.find(1, i + 1)
        if before >= 0:
            pairs.append(_BEFORE_HASHES[words[before]] << 16 | value)
        if after >= 0:
            pairs.append(_AFTER_HASHES[words[after]] << 16 | value)
        if len(pairs) >= MAX_NUMBERS:
            break
        i = flags.find(0, i + 1)
    return sorted(set(pairs[:MAX_NUMBERS]))


# The mix's first xorshift distributes over the xor with the seed, (s ^ x) ^ ((s ^ x) >> 30) ==
# (s ^ s >> 30) ^ (x ^ x >> 30), so it runs on the seeds once and on each item's shingles, not on the
# (shingles x SIGNATURE_SIZE) array.
_SEEDS_MIXED = (_SEEDS ^ (_SEEDS >> np.uint64(30))).reshape(SIGNATURE_SIZE)
# Row i of the array is shingle i against every seed. Built flat from a repeat and these seeds laid end to end:
# a broadcast over two axes costs numpy a loop per row, more than the two flat passes together.
_BLOCK = 1024  # shingles per pass: bounds the seed tile (1 MB) and the array for huge bodies
_SEED_TILE = np.tile(_SEEDS_MIXED, _BLOCK)
_SHIFT27 = np.uint64(27)
_SHIFT30 = np.uint64(30)
_SHIFT31 = np.uint64(31)
_BIGRAM = np.uint64(0x9E3779B1)
_LOW32 = np.uint64(0xFFFFFFFF)
_EMPTY_SIGNATURE = struct.pack(f"<{SIGNATURE_SIZE}H", *([_EMPTY_SLOT] * SIGNATURE_SIZE))


def _signature(words: list[str]) -> tuple[bytes, bool]:
    if not words:
        return _EMPTY_SIGNATURE, True
    ids = np.fromiter(map(_WORD_HASHES.__getitem__, words), dtype=np.uint64, count=len(words))
    if len(ids) > 1:
        # bigram hashes from the token hashes: the multiplier makes (a, b) differ from (b, a)
        shingles = ids[:-1] * _BIGRAM
        shingles += ids[1:]
        shingles &= _LOW32
    else:
        shingles = ids
    # Repeated shingles are not removed: they cannot change a minimum, and np.unique costs more than they do.
    shingles ^= shingles >> _SHIFT30
    mins = _minimums(shingles[:_BLOCK])
    for start in range(_BLOCK, len(shingles), _BLOCK):
        np.minimum(mins, _minimums(shingles[start : start + _BLOCK]), out=mins)
    return mins.astype("<u2").tobytes(), False  # the cast keeps the low 16 bits


def _minimums(shingles: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Per seed, the least mixed value over at most _BLOCK shingles (already through the first xorshift)."""
    n = len(shingles)
    x = np.repeat(shingles, SIGNATURE_SIZE)
    x ^= _SEED_TILE[: n * SIGNATURE_SIZE]
    x *= _MIX1
    x ^= x >> _SHIFT27
    x *= _MIX2
    x ^= x >> _SHIFT31
    mins: npt.NDArray[np.uint64] = x.reshape(n, SIGNATURE_SIZE).min(axis=0)
    return mins


def fingerprint(title: str, text: str, *, folded_text: str | None = None) -> Fingerprint:
    """Fingerprint an item from its plain-text title and body (any script; folding happens here).

    ``folded_text``, if given, must be ``fold(text)``: a caller that folds the body anyway saves folding
    it twice. It is used only when ``text`` is within the cut below.
    """
    # Copies share their beginnings, so a body cut at a fixed length still compares like with like.
    title = title[:2000]
    if folded_text is None or len(text) > MAX_TEXT_CHARS:
        folded_text = fold(text[:MAX_TEXT_CHARS])
    # Folding is per character and its output ASCII, so the tokens of the folded text are the tokens of
    # the text (tokens() of ASCII is one translate), and the number scan reads the same folded text.
    folded_title = fold(title)
    title_words = tokens(folded_title)
    body_words = tokens(folded_text)
    short = len(body_words) < SHORT_BODY_TOKENS
    all_words = title_words + body_words  # tokens(f"{folded_title}\n{folded_text}")
    signature, empty = _signature(all_words if short else body_words)
    title_hashes = sorted(set(map(_WORD_HASHES.__getitem__, title_words)))[:MAX_TITLE_TOKENS]
    numbers = _number_pairs(_number_or_words(f"{folded_title}\n{folded_text}", all_words))
    return Fingerprint(
        signature=signature,
        title=tuple(title_hashes),
        numbers=tuple(numbers),
        body_tokens=len(body_words),
        short=short,
        empty=empty,
    )


def _as_int64(digest: bytes) -> int:
    return int.from_bytes(digest, "little", signed=True)


def band_keys(fp: Fingerprint) -> list[int]:
    """LSH keys (signed 64-bit, for an indexed SQLite column): items sharing one are candidates.

    The signature's bands find copies with similar bodies; one extra key from the exact title-token set
    lets a headline-only item meet a full copy carrying the same headline.
    """
    return list(_band_keys(fp))


# A new item's keys are wanted twice, to find candidates and to index it: 21 blake2b digests each time.
@lru_cache(maxsize=256)
def _band_keys(fp: Fingerprint) -> tuple[int, ...]:
    if fp.empty:
        return ()
    signature = fp.signature
    width = ROWS * 2
    digests = []
    for band, hasher in enumerate(_BAND_HASHERS[fp.short]):
        h = hasher.copy()
        h.update(signature[band * width : (band + 1) * width])
        digests.append(h.digest())
    keys = _BAND_KEYS.unpack(b"".join(digests))
    if len(fp.title) >= TITLE_KEY_MIN_TOKENS:
        packed = struct.pack(f"<{len(fp.title)}I", *fp.title)
        keys += (_as_int64(hashlib.blake2b(b"t" + packed, digest_size=8).digest()),)
    return keys


# Band key = blake2b(kind + band number + the band's minimums). Copying a hasher that has already absorbed
# the first two bytes is cheaper than building one from its parameters. Short and long signatures cover
# different text, so their keys never mix: kind is b"s" or b"l", indexed here by ``short``.
_BAND_HASHERS = {
    short: [hashlib.blake2b(kind + bytes([band]), digest_size=8) for band in range(BANDS)]
    for short, kind in ((True, b"s"), (False, b"l"))
}
_BAND_KEYS = struct.Struct(f"<{BANDS}q")  # the digests read as signed little-endian 64-bit integers


def _signature_similarity(a: Fingerprint, b: Fingerprint) -> float:
    if a.empty or b.empty or a.short != b.short:
        return 0.0
    sa = np.frombuffer(a.signature, dtype="<u2")
    sb = np.frombuffer(b.signature, dtype="<u2")
    agree = float(np.count_nonzero(sa == sb)) / SIGNATURE_SIZE
    # b-bit MinHash: unequal minimums still agree in their low 16 bits with probability 2**-16
    chance = 1.0 / 65536
    return max(0.0, (agree - chance) / (1.0 - chance))


def _title_similarity(a: Fingerprint, b: Fingerprint) -> float:
    ta, tb = set(a.title), set(b.title)
    union = ta | tb
    return len(ta & tb) / len(union) if union else 0.0


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard similarity in [0, 1]: of the signatures if comparable, else of the titles."""
    if not a.empty and not b.empty and a.short == b.short:
        return _signature_similarity(a, b)
    return _title_similarity(a, b)


def numbers_conflict(a: Fingerprint, b: Fingerprint) -> bool:
    """True when some word carries different numbers in the two items, and neither set contains the other.

    Containment is allowed because a trimmed copy loses numbers; it never gains different ones.
    """
    left: dict[int, set[int]] = {}
    right: dict[int, set[int]] = {}
    for pair in a.numbers:
        left.setdefault(pair >> 16, set()).add(pair & 0xFFFF)
    for pair in b.numbers:
        right.setdefault(pair >> 16, set()).add(pair & 0xFFFF)
    for context in left.keys() & right.keys():
        x, y = left[context], right[context]
        if not (x <= y or y <= x):
            return True
    return False


def _containment(jaccard: float, size_a: int, size_b: int) -> float:
    """Share of the smaller bigram set inside the larger, from their Jaccard and (approximate) sizes.

    Feeds that carry only an article's lead give a small body inside another outlet's full text: the
    Jaccard is low (0.4 for a 45-word lead of a 110-word story) though every lead bigram is in the
    full text. Sizes are token counts, close to distinct-bigram counts for prose.
    """
    small = min(size_a, size_b)
    if small <= 0:
        return 0.0
    shared = jaccard * (size_a + size_b) / (1.0 + jaccard)
    return min(1.0, shared / small)


def _negation_differs(a: Fingerprint, b: Fingerprint) -> bool:
    return bool(_NEGATION_HASHES.intersection(a.title)) != bool(_NEGATION_HASHES.intersection(b.title))


def is_near_duplicate(
    a: Fingerprint, b: Fingerprint, settings: NearDupSettings | None = None
) -> tuple[bool, float]:
    """Decide whether two fingerprints are the same story; the float is the score the rule used.

    Rules, strictest evidence first:
    1. numbers attached to the same word differ -> distinct (templates: "12 killed" vs "15 killed");
    2. both bodies long -> body signatures reach ``body_threshold``, or the shorter body lies inside the
       longer (``containment_threshold``) and the titles agree (``containment_title_threshold``);
    3. both short -> title + body signatures reach ``short_threshold`` and titles ``short_title_threshold``;
    4. otherwise (one side is a headline only) -> titles of ``min_title_tokens`` or more reach
       ``title_only_threshold``.
    In rules 3 and 4 a negation present in one title only also means distinct.
    """
    s = settings or NearDupSettings()
    if a.empty or b.empty:
        return False, 0.0
    if s.number_guard and numbers_conflict(a, b):
        return False, similarity(a, b)
    if not a.short and not b.short:
        score = _signature_similarity(a, b)
        if score >= s.body_threshold:
            return True, score
        contained = _containment(score, a.body_tokens, b.body_tokens)
        if contained >= s.containment_threshold and _title_similarity(a, b) >= s.containment_title_threshold:
            return True, score  # the Jaccard still, so a full copy outranks a lead-only one as a match
        return False, score
    if s.negation_guard and _negation_differs(a, b):
        return False, _title_similarity(a, b)
    title_score = _title_similarity(a, b)
    if a.short and b.short and a.body_tokens and b.body_tokens:
        score = _signature_similarity(a, b)
        return score >= s.short_threshold and title_score >= s.short_title_threshold, min(score, title_score)
    long_enough = min(len(a.title), len(b.title)) >= s.min_title_tokens
    return long_enough and title_score >= s.title_only_threshold, title_score
