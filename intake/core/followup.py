"""Follow-ups: recognise a message that belongs to a known case, and merge it into the case.

Pure functions; the daemon looks the case up and applies the outcome. A message is a
follow-up when its subject carries a case reference (`SME-2026-00042`, any "Re:/SV:/AW:"
prefix) or its In-Reply-To/References name a message of the case (ours or theirs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from intake.core.extract import norm_line
from intake.core.triage import MISSING_ORDER, Result

REF_RE = re.compile(r"\bSME-(\d{4})-(\d{5,})\b")


def refs_in(subject: str) -> list[str]:
    return [m.group(0) for m in REF_RE.finditer(subject or "")]


def reply_lines(bodies: list[str]) -> frozenset[str]:
    """Lines of our own replies: when quoted back to us (marked or not) they are not new data."""
    return frozenset(n for b in bodies for n in (norm_line(ln) for ln in b.splitlines()) if len(n) > 3)


@dataclass
class CaseState:
    status: str  # accepted | incomplete | redirected | closed
    client_name: str | None
    cpr_hmac: str | None
    cpr_masked: str | None
    examinations: list[str]
    has_problem: bool
    attachments: int


@dataclass
class Merge:
    decision: str  # accepted | incomplete | manual
    manual_reason: str | None = None
    missing: list[str] = field(default_factory=list)
    answer: bool = True  # send an automatic reply
    client_name: str | None = None
    cpr_hmac: str | None = None
    cpr_masked: str | None = None
    examinations: list[str] = field(default_factory=list)
    has_problem: bool = False
    attachments: int = 0


def merge(case: CaseState, result: Result, new_cpr_hmac: str | None) -> Merge:
    """What the case looks like with this follow-up, and what to do with the message."""
    if case.status in ("closed", "redirected"):
        return Merge("manual", "followup_closed_case", answer=False)
    if result.distinct_cprs > 1:
        return Merge("manual", "multiple_cpr", answer=False)
    if new_cpr_hmac and case.cpr_hmac and new_cpr_hmac != case.cpr_hmac:
        return Merge("manual", "cpr_mismatch", answer=False)
    m = Merge(
        decision="incomplete",
        client_name=case.client_name or result.name,
        cpr_hmac=case.cpr_hmac or new_cpr_hmac,
        cpr_masked=case.cpr_masked or result.cpr,
        examinations=list(dict.fromkeys(case.examinations + result.examinations)),
        has_problem=case.has_problem or bool(result.problem),
        attachments=case.attachments + len(result.attachments),
    )
    have = {"name": bool(m.client_name), "cpr": bool(m.cpr_hmac), "examination": bool(m.examinations),
            "problem": m.has_problem, "attachments": m.attachments > 0}
    m.missing = [k for k in MISSING_ORDER if not have[k]]
    if case.status == "accepted":  # more material for a complete case: filed with it, no reply
        m.decision, m.missing, m.answer = "accepted", [], False
    elif not m.missing:
        m.decision = "accepted"
    return m
