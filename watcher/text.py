"""Text folding shared by matching and dedup (interim version; the query work extends it).

Contract: ``fold(s)`` maps case, diacritic and script variants of a word to one ASCII form, so that
Vučić, VUČIĆ, Vucic and Вучић are equal; ``tokens(s)`` splits folded text into letter/digit runs.
"""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii

_SERBIAN = str.maketrans(
    {
        "ђ": "dj", "Ђ": "Dj", "ћ": "c", "Ћ": "C", "ч": "c", "Ч": "C", "ж": "z", "Ж": "Z",
        "ш": "s", "Ш": "S", "љ": "lj", "Љ": "Lj", "њ": "nj", "Њ": "Nj", "џ": "dz", "Џ": "Dz",
        "ј": "j", "Ј": "J", "х": "h", "Х": "H", "ц": "c", "Ц": "C", "đ": "dj", "Đ": "Dj",
    }
)  # fmt: skip
_TOKEN = re.compile(r"[a-z0-9]+")


def fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s.translate(_SERBIAN))
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    return anyascii(s).lower()


def tokens(s: str) -> list[str]:
    return _TOKEN.findall(fold(s))
