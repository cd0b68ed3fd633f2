"""Large bodies bypass the stdlib parser: the results must be exactly what the parser gives."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from intake.config import Limits, Settings, TriageConfig
from intake.core.triage import triage
from tests.mailfactory import BODY, PDF, plain, raw_message, referral
from tests.test_triage import _with_signature_logo

TINY = Settings(triage=TriageConfig(limits=Limits(big_message_bytes=600)))


def both(raw: bytes):
    normal, _ = triage(raw)
    cut, _ = triage(raw, TINY)
    return normal.as_dict(), cut.as_dict()


@pytest.mark.parametrize("raw", [
    referral(attachments=[("a.pdf", PDF * 400, "application/pdf"), ("b.bin", os.urandom(70_000), "application/octet-stream")]),
    referral(BODY * 30, html="<p>" + BODY.replace("\n", "<br>") * 30 + "</p>"),
    referral(BODY * 40, charset="iso-8859-1"),
    plain(BODY * 200),
    _with_signature_logo(),
    raw_message("""From: A <a@aalborg.dk>
Subject: qp
Content-Type: multipart/mixed; boundary="x"
""", b"--x\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + BODY.encode("latin-1").replace(b"\xf8", b"=F8") * 50
        + b"\r\n--x\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + b"abc=3D=\r\ndef\r\n" * 20000 + b"--x--\r\n"),
])
def test_cut_bodies_give_the_same_result(raw):
    normal, cut = both(raw)
    assert cut == normal


def test_digest_of_a_large_base64_attachment_matches_the_data():
    data = os.urandom(5 * 1024 * 1024 + 17)
    raw = referral(attachments=[("Journal.pdf", data, "application/pdf")])
    r, _ = triage(raw)  # over the default 4 MB: the cut path
    a = r.attachments[0]
    assert a.size == len(data) and a.sha256 == hashlib.sha256(data).hexdigest()


def test_broken_base64_in_a_cut_body_does_not_crash():
    bad = b"!!!!" + base64.encodebytes(b"x" * 100_000).replace(b"A", b"=")
    raw = raw_message("""From: A <a@aalborg.dk>
Subject: x
Content-Type: multipart/mixed; boundary="x"
""", b"--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + bad + b"\r\n--x--\r\n")
    r, _ = triage(raw, TINY)
    assert r.decision in ("incomplete", "manual")
