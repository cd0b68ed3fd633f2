"""Normalise Unicode text before it is read or masked: one form for every dash, space and digit.

Mail arrives with en dashes, non-breaking hyphens, figure spaces, zero-width joiners and
full-width digits; a CPR number or a label written with any of them must read (and mask) like
the ASCII form. NFKC folds compatibility characters (full-width digits, ligatures); the tables
below fold what NFKC leaves alone. The result has the same meaning, not the same length.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_BMP_AND_TAGS = (range(0x10000), range(0xE0000, 0xE0080))


@lru_cache(maxsize=1)
def _table() -> dict[int, str | None]:
    """Every dash (Pd, minus signs, the non-breaking hyphen) as "-", every space separator (Zs)
    as " ", format characters (Cf: zero-width, soft hyphen, bidi marks) removed, middle dots
    as ".". Built on first use (it walks the BMP once)."""
    table: dict[int, str | None] = {}
    for rng in _BMP_AND_TAGS:
        for c in rng:
            cat = unicodedata.category(chr(c))
            if cat == "Pd":
                table[c] = "-"
            elif cat == "Zs" and c != 0x20:
                table[c] = " "
            elif cat == "Cf":
                table[c] = None
    for ch in "\u2212\u2043\ufe63\uff0d":
        table[ord(ch)] = "-"
    for ch in "\u00b7\u2024\u2027":
        table[ord(ch)] = "."
    return table


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def normalize(text: str) -> str:
    """NFKC, every dash as "-", every space as " ", format characters and C0/C1 controls gone
    (TAB and newline kept: they carry table columns and lines)."""
    if text.isascii():
        return _CONTROLS.sub(" ", text) if _CONTROLS.search(text) else text
    return _CONTROLS.sub(" ", unicodedata.normalize("NFKC", text).translate(_table()))
