"""Recognise the requested examinations as concepts, not fixed phrases.

An examination is one of the four offers of seed 004, expressed by a *domain* word
("psykiatrisk", "psykiater", "psykiatri") and a *product* word ("erklæring", "undersøgelse",
"vurdere", "speciallæge") near each other in one clause, in either order, or inside one
compound ("psykologundersøgelse"). The supportive conversations are a *talk* word
("samtaler", "samtaleforløb") with a psychologist, a support word or a number of talks.
Fixed phrases (`phrases`, e.g. "PSYK 141") count on their own. All words are data
(`[examination_concepts]` in `config/rules.toml`).

A mention is not a request when its clause speaks of history ("der foreligger", "fra 2022",
"vedhæftet"), stands in a list of attached files, or is an unticked box; those are counted
as `history` so the triage can tell "no examination named" from "only earlier ones named".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from intake.core.rules import Rules
from intake.core.segments import unwrap

_CLAUSE = re.compile(r"(?<=[.!?;])\s+|\n|,\s*(?:men|da|fordi|og\s+(?:vi|nu|derfor|hun|han))\s+|\s+men\s+", re.I)
_WORD = re.compile(r"[^\W_][\w\-]*", re.U)
_FILE_LINE = re.compile(r"\.(?:pdf|docx?|odt|rtf|jpe?g|png|tiff?|msg|eml)\b", re.I)


@dataclass
class ExamFinding:
    requested: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)


def _clauses(text: str) -> list[tuple[str, bool]]:
    """(clause, in_attachment_list) in order."""
    out: list[tuple[str, bool]] = []
    in_list = False
    for line in unwrap(text).split("\n"):
        s = line.strip()
        if not s:
            in_list = False
            continue
        if _attachment_list_label(s):
            in_list = True
            rest = s.split(":", 1)[1] if ":" in s else ""
            if rest.strip():
                out.append((rest, True))
            continue
        for c in _CLAUSE.split(s):
            if c and c.strip():
                out.append((c, in_list or bool(_FILE_LINE.search(c))))
    return out


_ATT_LABEL = re.compile(r"^\W{0,3}(?:vedhæftet|vedhæftede?\s+(?:filer|akter|bilag|dokumenter)|vedlagt|vedlagte\s+(?:akter|bilag|dokumenter)|"
                        r"bilag|medsendte?\s+(?:akter|bilag)|sagsakter|akter)\s*:", re.I)


def _attachment_list_label(line: str) -> bool:
    return bool(_ATT_LABEL.match(line))


def _concept_hits(words: list[str], rules: Rules) -> list[tuple[str, str]]:
    """(code, matched words) for the concepts in one clause's words."""
    c = rules.exam_concepts
    hits: list[tuple[str, str]] = []
    n = len(words)
    for i, w in enumerate(words):
        lw = w.lower()
        for code, dom in c.domains:
            if not dom.match(lw):
                continue
            # a compound carries both: "psykologundersøgelse", "psykologsamtaler"
            rest = dom.sub("", lw, count=1)
            if rest and c.talk.search(rest) and code in c.talk_domains:
                hits.append(("stoettende_samtaler", w))
                continue
            if rest and c.product.search(rest):
                hits.append((code, w))
                continue
            lo, hi = max(0, i - c.window), min(n, i + c.window + 1)
            near = [words[k].lower() for k in range(lo, hi) if k != i]
            if code in c.talk_domains and any(c.talk.match(x) for x in near):
                hits.append(("stoettende_samtaler", " ".join(words[lo:hi])))
            elif any(c.product.match(x) for x in near):
                hits.append((code, " ".join(words[lo:hi])))
        if c.talk.match(lw):
            lo, hi = max(0, i - c.window), min(n, i + c.window + 1)
            near = " ".join(x.lower() for x in words[lo:hi])
            if c.talk_support.search(near):
                hits.append(("stoettende_samtaler", " ".join(words[lo:hi])))
    return hits


def find(units: list[tuple[str, str]], rules: Rules) -> ExamFinding:
    """Examinations in `units` ((source, text) pairs, read in order)."""
    out = ExamFinding()
    c = rules.exam_concepts
    for source, text in units:
        for clause, listed in _clauses(text):
            if c.unticked.search(clause):
                continue
            found: list[tuple[str, str]] = []
            for code, pat in c.phrases:
                m = pat.search(clause)
                if m:
                    found.append((code, m.group(0)))
            words = _WORD.findall(clause)
            found += _concept_hits(words, rules)
            if c.ticked.search(clause):  # "☒ Psykiatrisk", "[X] us_psykolog"
                for w in words:
                    for part in re.split(r"[_\-]", w.lower()):
                        for code, dom in c.domains:
                            if dom.match(part):
                                found.append(("stoettende_samtaler" if c.talk.search(w.lower()) and code in c.talk_domains
                                              else code, f"ticked: {w}"))
            if not found:
                continue
            history = listed or (not c.request_cue.search(clause) and bool(c.history_cue.search(clause)))
            for code, words in found:
                target = out.history if history else out.requested
                if code not in target:
                    target.append(code)
                    if not history:
                        out.evidence.append({"source": source, "rule": f"{code}: {words[:80]}"})
    # a psychological examination is not also asked for by "psykologsamtaler" alone
    out.requested = [e for e in rules.exam_order if e in out.requested]
    out.history = [e for e in rules.exam_order if e in out.history and e not in out.requested]
    return out
