"""Decide whether a message belongs in Mediconnect Proces rather than the e-mail route.

What counts is what the sender asks for now: a match is cancelled by a negation or past-tense
cue a few words before it in the same sentence ("ikke omfattet af Klinisk Funktion",
"uden behandling i rehabiliteringsteamet", "har tidligere været på rehabiliteringsteammøde"),
or by an ending cue right after it ("ressourceforløbet blev afsluttet"). Phrases live in
`config/rules.toml`.
"""

from __future__ import annotations

import re

from intake.rules import Rules

_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-ZÆØÅ0-9\"“])|[;\n]")


def _cancelled(text: str, start: int, end: int, rules: Rules) -> bool:
    window_start = max(0, start - 200)
    before = text[window_start:start]
    ends = list(_SENTENCE_END.finditer(before))
    if ends:
        before = before[ends[-1].end():]
    words = before.split()[-rules.redirect_window_words:]
    if words and rules.redirect_before_cue.search(" ".join(words)):
        return True
    return bool(rules.redirect_after_cue.search(text[end:end + 60]))


def redirect_reason(text: str, rules: Rules) -> str | None:
    """The first redirect rule (in configured precedence) with an uncancelled match."""
    for rule in rules.redirect_rules:
        for m in rule.pattern.finditer(text):
            if not _cancelled(text, m.start(), m.end(), rules):
                return rule.reason
    return None
