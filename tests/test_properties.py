"""Reliability, measured: properties of the triage over generated and mutated mail (hypothesis).

Every example is triaged twice in process (the worker's `worker = false` path) and must hold
every property of `tests.propmail.check`: no exception, no CPR number in a reply in any form,
replies only to the sender at an allowed municipal domain, the same answer twice. The examples
are derandomised (a fixed seed per test) so CI sees the same ones every run; the benchmark
bench/bench_properties.py runs the same properties over 100,000 messages.

Example counts: INTAKE_PROPERTY_SCALE (default 1.0) multiplies them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import propmail

SCALE = float(os.environ.get("INTAKE_PROPERTY_SCALE", "1.0"))


def profile(n: int):
    # Health checks: messages are large by design (too_slow, data_too_large, large_base_example
    # would flag the very inputs we want); nothing else is suppressed.
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True, database=None,
                    print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


def holds(raw: bytes) -> propmail.Outcome:
    out = propmail.check(raw)
    assert not out.failures, "\n".join(out.failures)
    return out


@profile(1000)
@given(st.builds(propmail.mutate, st.sampled_from(propmail.seeds()), propmail.mutations(1, 8)))
def test_mutated_seeds(raw):
    holds(raw)


@profile(800)
@given(propmail.generated())
def test_generated_messages(raw):
    holds(raw)


@profile(500)
@given(st.builds(propmail.mutate, propmail.generated(), propmail.mutations(1, 5)))
def test_generated_then_mutated(raw):
    holds(raw)


@profile(200)
@given(st.sampled_from(propmail.NAMES), propmail.cpr_digits(), st.data())
def test_referral_with_cpr_in_subject_and_body_never_echoes_it(name, digits, data):
    """A readable referral from an allowed sender, its CPR number in the subject and body in
    any spelling: it gets a reply, and the reply holds no form of the number."""
    from tests.mailfactory import BODY, referral

    written = data.draw(propmail.cpr_written(digits))
    subject = f"Henvisning {name} {data.draw(propmail.cpr_written(digits))} psykiatrisk speciallægeerklæring"
    raw = referral(BODY.replace("Karen Lund", name).replace("120385-1233", written), subject=subject)
    out = holds(raw)
    assert out.replied


def test_the_checks_catch_a_leak():
    """The property checker itself: a reply text holding a CPR number in any spelling fails."""
    known = {"1203851233"}
    for text in ("Tak for 120385-1233", "Emne 12.03.85 1233", "１２０３８５１２３３", "1 2 0 3 8 5 - 1 2 3 3",
                 "12 03 85 12 33"):
        assert propmail.cpr_leaks(text, known), text
    assert not propmail.cpr_leaks("Tak for henvisningen af Karen Lund (120385-XXXX).", known)
    assert propmail.address_problems("evil@evil.example", b"From: evil@evil.example\r\n\r\nx")
    assert propmail.address_problems("a@aalborg.dk", b"From: b@aalborg.dk\r\n\r\nx")
    assert not propmail.address_problems("a@aalborg.dk", b"From: A <a@aalborg.dk>\r\n\r\nx")
    for look_alike in ("a@aalborg.dk.evil.example", "a@evilaalborg.dk", "a@\u00e5lborg.dk"):
        assert propmail.address_problems(look_alike, f"From: {look_alike}\r\n\r\nx".encode()), look_alike


def test_found_a_cpr_whose_dash_a_charset_conversion_turned_into_a_question_mark():
    """Found by test_generated_then_mutated: "Henvisning 010100?4000" in a broken encoded word
    was echoed in the reply's subject and body (mask_strict joined digits only by - . / _)."""
    raw = (b"From: =?utf-8?q?Mette_S=C3=B8rensen?= <mette.soerensen@aalborg.dk>\r\nTo: socialmedicin@rn.dk\r\n"
           b"Subject: =?iso-8859-1?q?Henvisning_010100?4000?=\r\nDate: Sun, 16 Nov 2025 08:00:00 +0000\r\n"
           b"Message-ID: <prop-0@aalborg.dk>\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           + "Hermed henvisning til socialmedicinsk speciallægeerklæring.\n".encode())
    out = holds(raw)
    assert out.replied
