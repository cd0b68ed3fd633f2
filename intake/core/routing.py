"""Decide whether a message belongs in Mediconnect Proces rather than the e-mail route.

What counts is what the sender asks for now, in the segments that count (new text, forwarded
referral, attached form; never quoted history or signatures). A match is cancelled by a
negation a few words before it in the same clause ("sagen har ikke på noget tidspunkt været
forelagt rehabiliteringsteamet", "ikke omfattet af Klinisk Funktion"), by a past-tense cue
before it unless the clause says it still goes on ("har været i ressourceforløb siden 2025"
is ongoing), or by an ending cue right after it ("ressourceforløbet blev afsluttet",
"jobafklaringsforløb indtil 2024"). Phrases live in `config/rules.toml`.
"""

from __future__ import annotations

import re

from intake.core.cpr import mask_text
from intake.core.rules import Rules
from intake.core.segments import unwrap

_CLAUSE_END = re.compile(r"[.!?](?=\s+[A-ZÆØÅ0-9\"“])|[;\n]|,\s*(?:men|mens|hvorefter|og\s+nu)\s")


def _clause_before(text: str, start: int) -> str:
    before = text[max(0, start - 240):start]
    ends = list(_CLAUSE_END.finditer(before))
    return before[ends[-1].end():] if ends else before


def _clause_after(text: str, end: int) -> str:
    after = text[end:end + 160]
    m = _CLAUSE_END.search(after)
    return after[: m.start()] if m else after


def _cancelled(text: str, start: int, end: int, rules: Rules) -> bool:
    before = _clause_before(text, start)
    after = _clause_after(text, end)
    words = before.split()[-rules.redirect_window_words:]
    window = " ".join(words)
    if words and rules.redirect_negation_cue.search(window):
        return True
    if rules.redirect_after_cue.search(" ".join(after.split()[:8])):
        return True
    if words and rules.redirect_past_cue.search(window):
        return not rules.redirect_ongoing_cue.search(before + " " + text[start:end] + " " + after)
    return False


def redirect_reason(units: list[tuple[str, str]], rules: Rules) -> tuple[str, dict] | None:
    """The first redirect rule (in configured precedence) with an uncancelled match in any
    unit, and its evidence."""
    units = [(source, unwrap(text)) for source, text in units]
    for rule in rules.redirect_rules:
        for source, text in units:
            for m in rule.pattern.finditer(text):
                if not _cancelled(text, m.start(), m.end(), rules):
                    return rule.reason, {"source": source, "rule": f"{rule.reason}: {mask_text(m.group(0))[:80]}"}
    return None
