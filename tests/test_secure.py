"""Encrypted and signed referrals (real gpg, real S/MIME), sender authenticity, forged headers."""

from __future__ import annotations

import pytest

from intake.config import Municipality, SecurityConfig, Settings, TriageConfig
from intake.core.triage import triage
from tests.cryptofactory import (make_pgp_world, make_smime_world, pgp_inline, pgp_mime_encrypted,
                                 pgp_mime_signed, smime_encrypted, smime_signed)
from tests.mailfactory import BODY, referral


@pytest.fixture(scope="session")
def pgp():
    return make_pgp_world()


@pytest.fixture(scope="session")
def smime(tmp_path_factory):
    return make_smime_world(tmp_path_factory.mktemp("smime"))


@pytest.fixture(scope="session")
def settings(pgp, smime) -> Settings:
    return Settings(security=SecurityConfig(
        gnupghome=pgp.home, smime_cert_file=smime.folder / "unit-cert.pem",
        smime_key_file=smime.folder / "unit-key.pem", smime_ca_file=smime.folder / "ca.pem"))


def decide(raw, settings):
    r, _ = triage(raw, settings)
    return r


def test_pgp_mime_encrypted_and_signed_is_decrypted_and_triaged(pgp, settings):
    r = decide(pgp_mime_encrypted(pgp, referral()), settings)
    assert (r.decision, r.name, r.cpr) == ("accepted", "Karen Lund", "120385-XXXX")
    assert r.encryption == "pgp" and r.signature_verdict == "valid" and r.signer == pgp.muni_fpr
    assert r.attachments and r.attachments[0].filename == "Sociale_akter.pdf"
    assert r.reply.kind == "acknowledgement"


def test_pgp_encrypted_to_another_key_is_undecryptable(pgp, settings):
    raw = pgp_mime_encrypted(pgp, referral(), to=pgp.muni_fpr)
    r = decide(raw, settings)
    assert (r.decision, r.manual_reason, r.reply) == ("manual", "undecryptable", None)


def test_pgp_without_keyring_is_undecryptable(pgp, smime):
    s = Settings(security=SecurityConfig(smime_ca_file=smime.folder / "ca.pem"))
    r = decide(pgp_mime_encrypted(pgp, referral()), s)
    assert r.manual_reason == "undecryptable"


def test_pgp_mime_signed(pgp, settings):
    r = decide(pgp_mime_signed(pgp, referral()), settings)
    assert r.decision == "accepted" and r.signature_verdict == "valid" and r.signer == pgp.muni_fpr
    assert [a.filename for a in r.attachments] == ["Sociale_akter.pdf"]


def test_tampered_pgp_signature_goes_to_a_person(pgp, settings):
    r = decide(pgp_mime_signed(pgp, referral(), tamper=True), settings)
    assert (r.decision, r.manual_reason, r.reply) == ("manual", "bad_signature", None)


def test_inline_pgp(pgp, settings):
    raw = pgp_inline(pgp, "From: Mette <mette.soerensen@aalborg.dk>\nTo: socialmedicin@rn.dk\n"
                          "Subject: Henvisning\nMessage-ID: <inl@aalborg.dk>", BODY)
    r = decide(raw, settings)
    assert r.encryption == "pgp" and r.name == "Karen Lund" and r.cpr == "120385-XXXX"
    assert r.missing == ["attachments"]


def test_smime_enveloped_is_decrypted(smime, settings):
    r = decide(smime_encrypted(smime, referral()), settings)
    assert (r.decision, r.encryption, r.name) == ("accepted", "smime", "Karen Lund")


def test_smime_without_the_key_is_undecryptable(smime, pgp):
    s = Settings(security=SecurityConfig(gnupghome=pgp.home))
    assert decide(smime_encrypted(smime, referral()), s).manual_reason == "undecryptable"


@pytest.mark.parametrize("opaque", [False, True])
def test_smime_signed_is_verified(smime, settings, opaque):
    r = decide(smime_signed(smime, referral(), opaque=opaque), settings)
    assert (r.decision, r.signature, r.signature_verdict) == ("accepted", "smime", "valid")
    assert "Aalborg Kommune Jobcenter" in r.signer


def test_tampered_smime_signature_goes_to_a_person(smime, settings):
    r = decide(smime_signed(smime, referral(), tamper=True), settings)
    assert (r.decision, r.manual_reason, r.reply) == ("manual", "bad_signature", None)


def test_smime_from_an_unknown_ca_is_not_valid(smime, tmp_path, settings):
    other = make_smime_world(tmp_path / "other")
    r = decide(smime_signed(other, referral()), settings)
    assert r.manual_reason == "bad_signature"


def test_require_signature_per_municipality(pgp, settings):
    munis = [Municipality(name="Aalborg Kommune", domain="aalborg.dk", require_signature=True,
                          pgp_fingerprints=[pgp.muni_fpr]),
             Municipality(name="Rebild Kommune", domain="rebild.dk")]
    s = settings.model_copy(update={"triage": TriageConfig(municipalities=munis)})
    assert decide(referral(), s).manual_reason == "signature_required"
    assert decide(pgp_mime_signed(pgp, referral()), s).decision == "accepted"
    assert decide(referral(from_="a@rebild.dk"), s).decision == "accepted"


# --- Authentication-Results --------------------------------------------------------------------

AUTH = Settings(security=SecurityConfig(authserv_ids=["mx.rn.dk"]))


@pytest.mark.parametrize("headers,expected", [
    (["mx.rn.dk; spf=pass smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk; dmarc=pass"], "accepted"),
    (["mx.rn.dk; spf=fail smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk; dmarc=pass"], "accepted"),
    (["mx.rn.dk; spf=fail smtp.mailfrom=aalborg.dk; dkim=fail header.d=aalborg.dk"], "authentication_failed"),
    (["mx.rn.dk; spf=pass; dkim=pass; dmarc=fail header.from=aalborg.dk"], "authentication_failed"),
    (["mx.rn.dk 1; spf=softfail; dkim=none"], "authentication_failed"),
    # only the topmost trusted header counts; a forged one lower down does not
    (["mx.rn.dk; spf=pass smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk; dmarc=pass header.from=aalborg.dk",
      "mx.rn.dk; dmarc=fail"], "accepted"),
    (["mx.rn.dk; dmarc=fail", "mx.rn.dk; spf=pass; dkim=pass; dmarc=pass"], "authentication_failed"),
    # untrusted authserv-ids are not read at all
    (["evil.example; spf=pass; dkim=pass; dmarc=pass", "mx.rn.dk; dmarc=fail"], "authentication_failed"),
    # fail closed: no trusted header at all, or passes that name no aligned domain
    (["evil.example; dmarc=fail"], "authentication_failed"),
    ([], "authentication_failed"),
    (["mx.rn.dk; spf=pass; dkim=pass; dmarc=pass"], "authentication_failed"),
])
def test_authentication_results(headers, expected):
    raw = referral()
    head, sep, body = raw.partition(b"\n\n")
    extra = b"".join(b"Authentication-Results: " + h.encode() + b"\n" for h in headers)
    r = decide(extra + raw, AUTH)
    assert (r.manual_reason or r.decision) == expected
    if expected == "authentication_failed":
        assert r.reply is None


# --- forged headers never redirect a reply -------------------------------------------------

@pytest.mark.parametrize("headers,from_", [
    ({"Reply-To": "attacker@evil.example"}, None),
    ({"Reply-To": '"mette.soerensen@aalborg.dk" <attacker@evil.example>'}, None),
    ({"Sender": "attacker@evil.example"}, None),
    ({"Reply-To": "a@aalborg.dk.evil.example"}, None),
])
def test_forged_reply_to_or_sender_never_redirects_a_reply(headers, from_):
    r = decide(referral(headers=headers), Settings())
    assert r.reply.to == "mette.soerensen@aalborg.dk"


def test_forged_from_display_name_gets_no_reply():
    r = decide(referral(from_='"mette.soerensen@aalborg.dk" <attacker@evil.example>'), Settings())
    assert r.reply is None and r.manual_reason == "sender_not_allowed"


@pytest.mark.parametrize("tamper,verdict", [(False, "valid"), (True, "invalid")])
def test_inline_clearsigned_pgp(pgp, settings, tamper, verdict):
    signed = pgp.sender.sign(BODY.encode("utf-8"), keyid=pgp.muni_fpr, clearsign=True).data.decode("utf-8")
    if tamper:
        signed = signed.replace("Karen Lund", "Karen Lind")
    raw = ("From: Mette <mette.soerensen@aalborg.dk>\r\nTo: socialmedicin@rn.dk\r\nSubject: Henvisning\r\n"
           "Message-ID: <cs@aalborg.dk>\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" + signed).encode("utf-8")
    r = decide(raw, settings)
    assert r.signature_verdict == verdict
    assert (r.manual_reason == "bad_signature") == tamper


def test_intake_triage_decrypts_when_the_config_names_the_keys(pgp, tmp_path):
    import json
    import subprocess
    import sys

    f = tmp_path / "enc.eml"
    f.write_bytes(pgp_mime_encrypted(pgp, referral()))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[security]\ngnupghome = "{pgp.home}"\n')
    p = subprocess.run([sys.executable, "-m", "intake", "triage", "--json", "--config", str(cfg), str(f)],
                       capture_output=True, text=True, timeout=60)
    d = json.loads(p.stdout)
    assert (d["decision"], d["encryption"], d["signature"]["verdict"]) == ("accepted", "pgp", "valid")
    p = subprocess.run([sys.executable, "-m", "intake", "triage", "--json", str(f)], capture_output=True, text=True)
    d = json.loads(p.stdout)  # no keys configured: encrypted mail goes to a person
    assert (d["decision"], d["manual_reason"], d["reply"]) == ("manual", "undecryptable", None)
