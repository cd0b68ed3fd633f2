"""Mutated referrals (a fixed-seed fuzz): every input gets a decision, never an exception."""

from __future__ import annotations

import random

from intake.core.triage import DECISIONS, triage
from tests.mailfactory import BODY, referral


def mutations(n: int, seed: int = 2026):
    rnd = random.Random(seed)
    base = [referral(), referral("", html="<table><tr><td>Navn</td><td>Karen Lund</td></tr></table>"),
            referral(BODY, charset="iso-8859-1")]
    for _ in range(n):
        raw = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 12)):
            op = rnd.random()
            i = rnd.randrange(len(raw))
            if op < 0.3:
                raw[i] = rnd.randrange(256)
            elif op < 0.5:
                del raw[i:i + rnd.randint(1, 200)]
            elif op < 0.7:
                raw[i:i] = rnd.choice([b"\r\n", b"\n\n", b"--", b"=?utf-8?b?", b"boundary=", b"Content-Type: multipart/mixed; boundary=x\n",
                                       b"\x00", b"\xff\xfe", b"=\n", b"<", b"&#", b"120385-1233"])
            else:
                j = rnd.randrange(len(raw))
                raw[i:i] = raw[j:j + rnd.randint(1, 400)]
        yield bytes(raw)


def test_mutated_referrals_always_get_a_decision():
    seen = set()
    for raw in mutations(400):
        r, _ = triage(raw)
        assert r.decision in DECISIONS
        assert r.manual_reason != "internal_error", r.error
        seen.add(r.decision)
        if r.reply:
            assert "\n" not in r.reply.subject and "1203851233" not in r.reply.body
    assert {"accepted", "incomplete", "manual"} <= seen
