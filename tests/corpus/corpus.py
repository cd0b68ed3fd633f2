"""Load the triage corpus (tests/corpus/<batch>/*.eml + expected.toml, and the generated form
messages of forms.py) and score triage results against it. Shared by tests/test_corpus.py
and bench/bench_corpus.py."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPLY_DECISIONS = frozenset({"accepted", "incomplete", "redirect"})


@dataclass
class Case:
    batch: str
    name: str
    raw: bytes
    expected: dict

    @property
    def cls(self) -> str:
        return self.expected.get("class", self.batch)


def load() -> list[Case]:
    cases: list[Case] = []
    for d in sorted(p for p in HERE.iterdir() if p.is_dir() and (p / "expected.toml").exists()):
        exp = tomllib.loads((d / "expected.toml").read_text(encoding="utf-8"))
        for eml in sorted(d.glob("*.eml")):
            cases.append(Case(d.name, eml.name, eml.read_bytes(), exp[eml.name]))
    if (HERE / "forms.py").exists():
        from tests.corpus import forms

        for name, raw, exp in forms.build():
            cases.append(Case("forms", name, raw, exp))
    return cases


def actual_reason(d: dict) -> str:
    return d.get("manual_reason") or d.get("redirect_reason") or d.get("ignored_reason") or ""


def verdict(case: Case, d: dict) -> tuple[bool, bool]:
    """(right, wrong_reply) for one result dict (the contract's JSON object)."""
    e = case.expected
    right = d["decision"] == e["decision"] and (
        e["decision"] == "ignored" or actual_reason(d) == (e.get("reason") or ""))
    if right and e["decision"] == "incomplete":
        right = list(d["missing"]) == list(e.get("missing", []))
    wrong_reply = d["decision"] in REPLY_DECISIONS and not right
    return right, wrong_reply


def describe(case: Case, d: dict) -> str:
    e = case.expected
    return (f"{case.batch}/{case.name}: expected {e['decision']} {e.get('reason') or ''} {e.get('missing') or ''}"
            f" got {d['decision']} {actual_reason(d)} {d['missing'] or ''}")
