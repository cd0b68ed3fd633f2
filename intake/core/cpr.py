"""Find Danish CPR numbers in text, tell them from look-alikes, and mask them.

Validation is python-stdnum's `stdnum.dk.cpr` (a real date, century from the 7th digit; no
modulus-11 check, since numbers issued after 2007 may fail it). A candidate is 10 digits written
DDMMYY-SSSS, DDMMYYSSSS or DDMMYY SSSS, not part of a longer number, a dotted/dashed code
(KLE `27.12.04-G01-3-24`), an EAN, an account or a phone number. A masked number
(`120385-xxxx`) is no number, but is remembered so a reply can say it was masked.
"""

from __future__ import annotations

import datetime as dt
import hmac
import hashlib
import re
from dataclasses import dataclass, field

from stdnum.dk import cpr as stdnum_cpr
from stdnum.exceptions import ValidationError

from intake.core.rules import Rules
from intake.core.textnorm import normalize

# Digits not glued to other digits, dots, slashes, plus signs or "digit-" sequences.
_CANDIDATE = re.compile(r"(?<![\d+])(?<!\d[.,/ -])(\d{6})( ?- ?| ?)(\d{4})(?!\d)(?![.,/-]\d)")
_MASKED = re.compile(r"(?<![\d+])(\d{6})[- ]?[xX*]{4}(?![\w])")
# Anything CPR-shaped, valid or not, for masking text that leaves the system (after
# `textnorm.normalize`: every dash is "-", every space " "): DDMMYY-SSSS with any separator
# or none, and the date part dotted or spaced (12.03.85-1234, 12 03 85 1234, 120385.1234).
_SHAPED = re.compile(r"(?<!\d)(\d\d)([-./ ]?)(\d\d)\2(\d\d) ?[-./_ ]? ?(\d{4})(?!\d)")


@dataclass
class CprFindings:
    valid: list[str] = field(default_factory=list)  # distinct 10-digit strings, in order found
    invalid: list[str] = field(default_factory=list)  # CPR-labelled but impossible numbers
    masked: list[str] = field(default_factory=list)  # DDMMYY of masked numbers


def mask(number: str) -> str:
    """`DDMMYY-XXXX`: the birth date part only."""
    digits = re.sub(r"\D", "", number)
    return f"{digits[:6]}-XXXX"


def mask_text(text: str) -> str:
    """Replace everything CPR-shaped in `text` by its masked form (for logs, replies, subjects).
    The text is normalised first (NFKC; every dash, space and dot class folded), so no
    separator hides a number: en dash, non-breaking hyphen, figure space, full-width digits."""
    text = normalize(text)
    return _SHAPED.sub(lambda m: f"{m.group(1)}{m.group(3)}{m.group(4)}-XXXX", text)


# Digits spread out so that no DDMMYY-SSSS shape is left: "0 7 1 1 7 9 - 4 3 2 1",
# "12 03 85 12 33", "12.03.1985-1233". A run of digits joined only by short separators
# (any one or two punctuation marks: a dash lost to a charset conversion reads "120385?1233").
# A time of day can look like one ("2026 08:30:07 +01"): hidden too, which costs nothing in a
# reply; the logs' own timestamp is added after masking (intake/service/logs.py).
_SPREAD = re.compile(r"\d(?:[ ]{0,2}(?:[^\w\s]|_){0,2}[ ]{0,2}\d)+")


def _date_like(six: str) -> bool:
    return 1 <= int(six[:2]) <= 31 and 1 <= int(six[2:4]) <= 12


def _mask_run(m: re.Match[str]) -> str:
    run = m.group(0)
    digits = re.sub(r"\D", "", run)
    if len(digits) < 10 or not any(_date_like(digits[i:i + 6]) for i in range(len(digits) - 9)):
        return run
    if len(digits) == 10:
        return f"{digits[:6]}-XXXX"
    return "XXXXXX-XXXX"  # more digits than a CPR number: which ten is unknown, hide all


def mask_strict(text: str) -> str:
    """`mask_text`, and then every run of ten or more digits joined only by spaces, dashes,
    dots, slashes or underscores that holds a DDMM date: for text that leaves the system
    (replies, logs), where hiding a harmless number costs nothing and a CPR number written
    digit by digit must not pass."""
    return _SPREAD.sub(_mask_run, mask_text(text))


def birth_date(number: str) -> dt.date | None:
    try:
        return stdnum_cpr.get_birth_date(number)
    except (ValidationError, ValueError, IndexError):
        return None


def is_valid(number: str, today: dt.date | None = None) -> bool:
    digits = stdnum_cpr.compact(number)
    if len(digits) != 10 or not digits.isdigit():
        return False
    born = birth_date(digits)
    return born is not None and born <= (today or dt.date.today())


def keyed_hash(number: str, key: bytes) -> str:
    """HMAC-SHA256 of the 10 digits: lets the store match a citizen without keeping the number."""
    return hmac.new(key, stdnum_cpr.compact(number).encode(), hashlib.sha256).hexdigest()


def _context_before(text: str, start: int, chars: int = 40) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    return text[max(line_start, start - chars):start]


def find(text: str, rules: Rules, today: dt.date | None = None) -> CprFindings:
    out = CprFindings()
    for m in _MASKED.finditer(text):
        if m.group(1) not in out.masked:
            out.masked.append(m.group(1))
    for m in _CANDIDATE.finditer(text):
        digits = m.group(1) + m.group(3)
        before = _context_before(text, m.start())
        labelled = bool(rules.cpr_label.search(before))
        # The label nearest the number decides: "Tlf. 12345678, CPR 120385-1234" is a CPR.
        last_cpr = max((x.end() for x in rules.cpr_label.finditer(before)), default=-1)
        last_other = max((x.end() for x in rules.not_cpr_label.finditer(before)), default=-1)
        if last_other > last_cpr:
            continue
        if is_valid(digits, today):
            if digits not in out.valid:
                out.valid.append(digits)
        elif labelled and digits not in out.invalid:
            out.invalid.append(digits)
    return out
