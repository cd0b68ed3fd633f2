"""Normalise Unicode text before it is read or masked: one form for every dash, space and digit.

Mail arrives with en dashes, non-breaking hyphens, figure spaces, zero-width joiners and
full-width digits; a CPR number or a label written with any of them must read (and mask) like
the ASCII form. NFKC folds compatibility characters (full-width digits, ligatures); the tables
below fold what NFKC leaves alone. The result has the same meaning, not the same length.
"""

from __future__ import annotations

import re
import unicodedata

# Every character of Unicode's dash punctuation class (Pd) plus the minus signs and the
# non-breaking hyphen, as "-".
_BMP_AND_TAGS = [*range(0x10000), *range(0xE0000, 0xE0080)]
_DASHES = "".join(chr(c) for c in _BMP_AND_TAGS if unicodedata.category(chr(c)) == "Pd") + "\u2212\u2043\ufe63\uff0d"
# Every space separator (Zs) and the tab-like controls other than TAB and newline, as " ".
_SPACES = "".join(chr(c) for c in _BMP_AND_TAGS if unicodedata.category(chr(c)) == "Zs" and c != 0x20)
# Format characters (Cf: zero-width space/joiners, soft hyphen, bidi marks) vanish.
_FORMAT = "".join(chr(c) for c in _BMP_AND_TAGS if unicodedata.category(chr(c)) == "Cf")

_TABLE = str.maketrans({**{ch: "-" for ch in _DASHES}, **{ch: " " for ch in _SPACES},
                        **{ch: None for ch in _FORMAT}, "\u00b7": ".", "\u2024": ".", "\u2027": "."})
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def normalize(text: str) -> str:
    """NFKC, every dash as "-", every space as " ", format characters and C0/C1 controls gone
    (TAB and newline kept: they carry table columns and lines)."""
    if text.isascii():
        return _CONTROLS.sub(" ", text) if _CONTROLS.search(text) else text
    return _CONTROLS.sub(" ", unicodedata.normalize("NFKC", text).translate(_TABLE))
