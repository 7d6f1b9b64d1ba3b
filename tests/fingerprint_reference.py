"""A frozen copy of watcher/fingerprint.py's ``fingerprint`` and ``band_keys`` as of commit 8d2d7d9, before they
were tuned for speed: the differential test (tests/test_fingerprint_speed.py) holds the live code to it.

Fingerprints are stored in SQLite and compared across versions, so the stored bytes and the LSH keys must
never change for any input. Keep this file as it is: it is the definition the fast code must meet, not code
to maintain. Only the folding and tokenizing (watcher.text, with its own contract and tests) is shared.
"""

from __future__ import annotations

import hashlib
import re
import struct

import numpy as np
import numpy.typing as npt

from watcher.text import fold, tokens

SIGNATURE_SIZE = 128
BANDS = 20
ROWS = 4
SHORT_BODY_TOKENS = 30
MAX_TITLE_TOKENS = 48
TITLE_KEY_MIN_TOKENS = 5
MAX_NUMBERS = 96
MAX_TEXT_CHARS = 40_000
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<BBHBB")
_FLAG_SHORT = 1
_FLAG_EMPTY = 2
_EMPTY_SLOT = 0xFFFF


def _seeds(label: str, count: int) -> npt.NDArray[np.uint64]:
    digests = (hashlib.blake2b(f"{label}{i}".encode(), digest_size=8).digest() for i in range(count))
    return np.array([int.from_bytes(d, "little") for d in digests], dtype=np.uint64).reshape(count, 1)


_SEEDS = _seeds("watcher-minhash", SIGNATURE_SIZE)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _h32(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")


# Kept as it was, so that bench/bench_fingerprint.py's "before" is the real before.
_WORD_HASHES: dict[str, int] = {}
_WORD_HASHES_MAX = 200_000


def _word_hash(w: str) -> int:
    h = _WORD_HASHES.get(w)
    if h is None:
        if len(_WORD_HASHES) >= _WORD_HASHES_MAX:
            _WORD_HASHES.clear()
        h = _WORD_HASHES[w] = _h32(w)
    return h


def _h16(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=2, person=b"ctx").digest(), "little")


_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "jedan": "1", "jedna": "1", "jedno": "1", "dva": "2", "dve": "2", "tri": "3", "cetiri": "4",
    "pet": "5", "sest": "6", "sedam": "7", "osam": "8", "devet": "9", "deset": "10",
    "prvi": "1st", "prva": "1st", "prvo": "1st", "drugi": "2nd", "druga": "2nd", "drugo": "2nd",
    "treci": "3rd", "treca": "3rd", "trece": "3rd",
}  # fmt: skip
_NUMBER_OR_WORD = re.compile(r"\d+(?:[.,]\d+)*[a-z]*|[a-z]+")


def _number_pairs(text: str) -> list[int]:
    words = [_NUMBER_WORDS.get(w, w) for w in _NUMBER_OR_WORD.findall(fold(text))]
    is_num = [w[0].isdigit() for w in words]
    pairs: list[int] = []
    for i, word in enumerate(words):
        if not is_num[i]:
            continue
        value = _h16(re.sub(r"[.,]", "", word))
        before = next((words[j] for j in range(i - 1, -1, -1) if not is_num[j]), None)
        after = next((words[j] for j in range(i + 1, len(words)) if not is_num[j]), None)
        if before:
            pairs.append(_h16("<" + before) << 16 | value)
        if after:
            pairs.append(_h16(">" + after) << 16 | value)
        if len(pairs) >= MAX_NUMBERS:
            break
    return sorted(set(pairs[:MAX_NUMBERS]))


def _signature(words: list[str]) -> tuple[bytes, bool]:
    if not words:
        return struct.pack(f"<{SIGNATURE_SIZE}H", *([_EMPTY_SLOT] * SIGNATURE_SIZE)), True
    ids = np.array([_word_hash(w) for w in words], dtype=np.uint64)
    if len(ids) > 1:
        shingles = (ids[:-1] * np.uint64(0x9E3779B1) + ids[1:]) & np.uint64(0xFFFFFFFF)
    else:
        shingles = ids
    shingles = np.unique(shingles)
    permuted = _mix(_SEEDS ^ shingles[np.newaxis, :])
    mins = permuted.min(axis=1) & np.uint64(0xFFFF)
    return mins.astype("<u2").tobytes(), False


def reference(title: str, text: str) -> tuple[bytes, list[int]]:
    """What the original ``fingerprint(title, text).to_bytes()`` and ``band_keys`` of it gave."""
    title, text = title[:2000], text[:MAX_TEXT_CHARS]
    title_words = tokens(title)
    body_words = tokens(text)
    short = len(body_words) < SHORT_BODY_TOKENS
    signature, empty = _signature(title_words + body_words if short else body_words)
    title_hashes = tuple(sorted({_word_hash(w) for w in title_words})[:MAX_TITLE_TOKENS])
    numbers = tuple(_number_pairs(f"{title}\n{text}"))
    flags = (_FLAG_SHORT if short else 0) | (_FLAG_EMPTY if empty else 0)
    head = _HEADER.pack(_FORMAT_VERSION, flags, min(len(body_words), 0xFFFF), len(title_hashes), len(numbers))
    data = (
        head
        + signature
        + struct.pack(f"<{len(title_hashes)}I", *title_hashes)
        + struct.pack(f"<{len(numbers)}I", *numbers)
    )
    return data, _band_keys(signature, title_hashes, short=short, empty=empty)


def _as_int64(digest: bytes) -> int:
    return int.from_bytes(digest, "little", signed=True)


def _band_keys(signature: bytes, title: tuple[int, ...], *, short: bool, empty: bool) -> list[int]:
    if empty:
        return []
    keys = []
    kind = b"s" if short else b"l"
    for band in range(BANDS):
        chunk = signature[band * ROWS * 2 : (band + 1) * ROWS * 2]
        keys.append(_as_int64(hashlib.blake2b(kind + bytes([band]) + chunk, digest_size=8).digest()))
    if len(title) >= TITLE_KEY_MIN_TOKENS:
        packed = struct.pack(f"<{len(title)}I", *title)
        keys.append(_as_int64(hashlib.blake2b(b"t" + packed, digest_size=8).digest()))
    return keys
