"""The whole corpus (tests/corpus) through the triage: no wrong automatic reply, ≥ 95 % right."""

from __future__ import annotations

import datetime as dt

import pytest

from intake.config import Settings
from intake.core.rules import load_rules
from intake.core.triage import triage
from tests.corpus.corpus import load, verdict, describe

TODAY = dt.date(2026, 11, 25)
CASES = load()


@pytest.fixture(scope="module")
def results():
    settings = Settings()
    rules = load_rules(None)
    return {(c.batch, c.name): triage(c.raw, settings, rules, today=TODAY)[0].as_dict() for c in CASES}


def test_corpus_is_wide_enough():
    assert len(CASES) >= 150
    other = [c for c in CASES if c.expected["decision"] == "redirect" or c.expected.get("reason") == "not_a_referral"]
    assert len(other) * 3 >= len(CASES) * 0.9  # about a third portal cases and non-referrals
    assert sum(1 for c in CASES if c.batch == "forms") >= 20


def test_no_wrong_automatic_reply(results):
    wrong = [describe(c, results[(c.batch, c.name)]) for c in CASES if verdict(c, results[(c.batch, c.name)])[1]]
    assert wrong == []


def test_decisions_right(results):
    wrong = [describe(c, results[(c.batch, c.name)]) for c in CASES if not verdict(c, results[(c.batch, c.name)])[0]]
    assert len(wrong) <= 0.05 * len(CASES), "\n".join(wrong)


def test_expected_examinations_and_names(results):
    off = []
    for c in CASES:
        d, e = results[(c.batch, c.name)], c.expected
        if d["decision"] == e["decision"] and e["decision"] in ("accepted", "incomplete"):
            if sorted(d["examinations"]) != sorted(e.get("examinations", [])):
                off.append(f"{c.name}: examinations {d['examinations']} != {e.get('examinations')}")
            if e.get("name") and d["name"] != e["name"]:
                off.append(f"{c.name}: name {d['name']!r} != {e['name']!r}")
    assert len(off) <= 0.05 * len(CASES), "\n".join(off)


def test_every_decision_has_evidence(results):
    for c in CASES:
        ev = results[(c.batch, c.name)]["evidence"]
        assert set(ev) >= {"name", "cpr", "examinations", "problem", "attachments", "decision"}
        assert ev["decision"], c.name
