"""Issue 9: signatures that mean something — a signature counts only when it covers the mail that
is triaged and its signer is configured for the sending municipality — and sender authentication
that fails closed. Real gpg and real openssl throughout (tests/cryptofactory.py)."""

from __future__ import annotations

import json
import time
from email.message import EmailMessage

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from intake.config import ConfigError, Municipality, SecurityConfig, Settings, TriageConfig, load_settings
from intake.core.triage import triage
from tests.conftest import Env
from tests.cryptofactory import (add_pgp_signer, clearsigned, make_pgp_world, make_smime_world, pgp_mime_encrypted,
                                 pgp_mime_signed, plain_mail, smime_signed, smime_signer)
from tests.mailfactory import BODY, referral

AALBORG_ORG = "O=Aalborg Kommune // CVR:29189420,C=DK"


@pytest.fixture(scope="module")
def pgp():
    return make_pgp_world()


@pytest.fixture(scope="module")
def rebild(pgp):
    """Another municipality's key, known to the unit (it is a partner too)."""
    return add_pgp_signer(pgp, "Rebild Kommune", "visitation@rebild.dk")


@pytest.fixture(scope="module")
def smime(tmp_path_factory):
    return make_smime_world(tmp_path_factory.mktemp("smime"))


def settings_for(pgp, smime, *, require: bool = True, rebild_fpr: str | None = None, **aalborg) -> Settings:
    """Aalborg (requiring a signature unless told) with the given signers; Rebild as a second
    municipality with its own key."""
    munis = [Municipality(name="Aalborg Kommune", domain="aalborg.dk", require_signature=require, **aalborg),
             Municipality(name="Rebild Kommune", domain="rebild.dk",
                          pgp_fingerprints=[rebild_fpr] if rebild_fpr else [])]
    return Settings(
        security=SecurityConfig(gnupghome=pgp.home, smime_ca_file=smime.folder / "ca.pem",
                                smime_cert_file=smime.folder / "unit-cert.pem",
                                smime_key_file=smime.folder / "unit-key.pem"),
        triage=TriageConfig(municipalities=munis))


def decide(raw: bytes, settings: Settings):
    return triage(raw, settings)[0]


def manual(r, reason: str) -> bool:
    return (r.decision, r.manual_reason, r.reply) == ("manual", reason, None)


# --- 1. the signature must cover the mail ------------------------------------------------------

def _layouts(block: str) -> dict[str, bytes]:
    return {
        "text_before": plain_mail("Hej\n\nCPR: 120385-1233, se nedenfor.\n\n" + block),
        "text_after": plain_mail(block + "\nNavn: Karen Lund\nCPR: 120385-1233\n"),
        "quoted": plain_mail("Tak.\n\n" + "\n".join("> " + ln for ln in block.splitlines())),
        "two_blocks": plain_mail(block + "\nCPR: 120385-1233\n" + block),
        # multipart/mixed, the block as the whole 7bit text part: the attached PDF is not covered
        "with_attachment": referral(block, charset="us-ascii"),
    }


@pytest.mark.parametrize("layout", ["text_before", "text_after", "quoted", "two_blocks", "with_attachment"])
@pytest.mark.parametrize("whose", ["aalborg", "rebild"])
def test_clearsigned_block_inside_an_unsigned_mail_is_not_a_signature(pgp, rebild, smime, layout, whose):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr])
    g, fpr = (pgp.sender, pgp.muni_fpr) if whose == "aalborg" else (rebild.gpg, rebild.fpr)
    raw = _layouts(clearsigned(g, fpr, "ok\n"))[layout]
    r = decide(raw, s)
    assert manual(r, "signature_required")
    assert (r.signature, r.signature_verdict, r.signer) == ("pgp", "partial", None)


def test_unsigned_mail_quoting_another_municipalitys_ok_is_manual(pgp, rebild, smime):
    """The case from the issue: it used to pass require_signature."""
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr], rebild_fpr=rebild.fpr)
    raw = plain_mail(BODY + "\n\nSe Rebilds svar:\n\n" + clearsigned(rebild.gpg, rebild.fpr, "ok\n"))
    r = decide(raw, s)
    assert manual(r, "signature_required")
    assert r.signature_verdict == "partial"
    # not required: the quoted block is just text, the mail is triaged as unsigned
    r = decide(raw, settings_for(pgp, smime, require=False))
    assert r.decision == "incomplete" and r.signature_verdict == "partial"


@pytest.mark.parametrize("wrap", ["plain", "whitespace", "quoted_printable", "mixed_one_part"])
def test_clearsigned_whole_body_by_the_municipality_is_accepted(pgp, smime, wrap):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr])
    block = clearsigned(pgp.sender, pgp.muni_fpr, BODY)
    if wrap == "plain":
        raw = plain_mail(block)
    elif wrap == "whitespace":
        raw = plain_mail("\n\n   \n" + block + "\n\n  \n")
    else:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"], m["Message-ID"] = ("mette.soerensen@aalborg.dk", "socialmedicin@rn.dk",
                                                             "Henvisning", "<qp@aalborg.dk>")
        if wrap == "quoted_printable":
            m.set_content(block, cte="quoted-printable")
        else:
            m.make_mixed()
            m.attach(EmailMessage())
            m.get_payload()[0].set_content(block)
        raw = m.as_bytes()
    r, parsed = triage(raw, s)
    assert (r.signature_verdict, r.signer) == ("valid", pgp.muni_fpr)
    assert r.decision == "incomplete" and r.missing == ["attachments"]  # read, and nothing attached
    assert (r.name, r.cpr) == ("Karen Lund", "120385-XXXX")
    assert "PGP" not in parsed.text  # what is triaged is the signed text, not the armor


def test_inline_encrypted_and_signed_counts_only_as_the_whole_body(pgp, rebild, smime):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr])
    armor = str(pgp.sender.encrypt(BODY.encode("utf-8"), pgp.unit_fpr, sign=pgp.muni_fpr, always_trust=True,
                                   armor=True))
    r = decide(plain_mail("\n" + armor + "\n"), s)
    assert (r.encryption, r.signature_verdict, r.signer, r.decision) == ("pgp", "valid", pgp.muni_fpr, "incomplete")
    assert r.name == "Karen Lund"
    # the same signed-and-encrypted block under unsigned text: decrypted, but not the mail's signature
    r = decide(plain_mail("Navn: Ole Olsen\nCPR: 010203-1234\n\n" + armor), s)
    assert manual(r, "signature_required")
    assert (r.encryption, r.signature_verdict, r.signer) == ("pgp", "partial", None)


def test_tampered_whole_body_clearsigned_is_a_bad_signature(pgp, smime):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr])
    block = clearsigned(pgp.sender, pgp.muni_fpr, BODY).replace("Karen Lund", "Karen Lind")
    assert manual(decide(plain_mail(block), s), "bad_signature")


# --- 2. the signer must be the sending municipality's -------------------------------------------

def test_pgp_signed_by_another_municipality_is_wrong_signer(pgp, rebild, smime):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr], rebild_fpr=rebild.fpr)
    for raw in (plain_mail(clearsigned(rebild.gpg, rebild.fpr, BODY)),
                pgp_mime_signed(pgp, referral(), signer=rebild),
                pgp_mime_encrypted(pgp, referral(), signer=rebild)):
        r = decide(raw, s)
        assert manual(r, "wrong_signer")
        assert (r.signature_verdict, r.signer) == ("wrong_signer", rebild.fpr)
    # the good path: Aalborg's own key
    for raw in (pgp_mime_signed(pgp, referral()), pgp_mime_encrypted(pgp, referral())):
        r = decide(raw, s)
        assert (r.decision, r.signature_verdict, r.signer) == ("accepted", "valid", pgp.muni_fpr)
    # Rebild's key is good for Rebild's own mail
    r = decide(pgp_mime_signed(pgp, referral(from_="visitation@rebild.dk"), signer=rebild), s)
    assert (r.decision, r.municipality, r.signature_verdict) == ("accepted", "Rebild Kommune", "valid")


def test_wrong_signer_where_no_signature_is_required(pgp, rebild, smime):
    """Not required: the mail is triaged as if unsigned, the verdict says whose it was not."""
    s = settings_for(pgp, smime, require=False, pgp_fingerprints=[pgp.muni_fpr])
    r = decide(pgp_mime_signed(pgp, referral(), signer=rebild), s)
    assert (r.decision, r.signature_verdict) == ("accepted", "wrong_signer")


def test_signature_required_with_an_unknown_key_or_none(pgp, smime, tmp_path):
    s = settings_for(pgp, smime, pgp_fingerprints=[pgp.muni_fpr])
    assert manual(decide(referral(), s), "signature_required")
    stranger = add_pgp_signer(make_pgp_world(), "Stranger", "x@aalborg.dk")  # key not in the unit's keyring
    r = decide(pgp_mime_signed(pgp, referral(), signer=stranger), s)
    assert manual(r, "signature_required") and r.signature_verdict == "unknown_key"


# --- 3. S/MIME: e-mail protection, the From address, the municipality ---------------------------

def test_smime_certificate_without_email_protection_is_not_valid(smime, pgp):
    server_only = smime_signer(smime, "CN=Aalborg Kommune Jobcenter", "mette.soerensen@aalborg.dk",
                               eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    for s in (settings_for(pgp, smime, smime_emails=["@aalborg.dk"]), settings_for(pgp, smime, require=False)):
        for opaque in (False, True):
            r = decide(smime_signed(smime, referral(), opaque=opaque, signer=server_only), s)
            assert manual(r, "bad_signature") and r.signature_verdict == "invalid"
    # the same certificate made for e-mail protection is fine
    email_cert = smime_signer(smime, "CN=Aalborg Kommune Jobcenter", "mette.soerensen@aalborg.dk",
                              eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    r = decide(smime_signed(smime, referral(), signer=email_cert), settings_for(pgp, smime, smime_emails=["@aalborg.dk"]))
    assert (r.decision, r.signature_verdict) == ("accepted", "valid")


def test_smime_signer_email_other_than_from_is_wrong_signer(smime, pgp):
    colleague = smime_signer(smime, "CN=Jens Hansen," + AALBORG_ORG, "jens.hansen@aalborg.dk")
    s = settings_for(pgp, smime, smime_emails=["@aalborg.dk"], smime_subjects=[AALBORG_ORG])
    for opaque in (False, True):
        r = decide(smime_signed(smime, referral(), opaque=opaque, signer=colleague), s)
        assert manual(r, "wrong_signer") and r.signature_verdict == "wrong_signer"
    # the same certificate on its owner's own mail is accepted
    r = decide(smime_signed(smime, referral(from_="Jens Hansen <Jens.Hansen@aalborg.dk>"), signer=colleague), s)
    assert (r.decision, r.signature_verdict) == ("accepted", "valid")
    # not required: triaged as unsigned, verdict kept
    r = decide(smime_signed(smime, referral(), signer=colleague), settings_for(pgp, smime, require=False))
    assert (r.decision, r.signature_verdict) == ("accepted", "wrong_signer")


def test_smime_bound_by_email_or_subject(smime, pgp):
    by_email = settings_for(pgp, smime, smime_emails=["mette.soerensen@aalborg.dk"])
    for opaque in (False, True):  # the world's signer: CN=Aalborg Kommune Jobcenter, mette.soerensen@aalborg.dk
        r = decide(smime_signed(smime, referral(), opaque=opaque), by_email)
        assert (r.decision, r.signature_verdict) == ("accepted", "valid")
    other_address = settings_for(pgp, smime, smime_emails=["jobcenter@aalborg.dk"])
    assert manual(decide(smime_signed(smime, referral()), other_address), "wrong_signer")

    by_subject = settings_for(pgp, smime, smime_subjects=[AALBORG_ORG])
    moces = smime_signer(smime, "CN=Mette Sørensen+serialNumber=CVR:29189420-RID:1234," + AALBORG_ORG,
                         "mette.soerensen@aalborg.dk")
    r = decide(smime_signed(smime, referral(), signer=moces), by_subject)
    assert (r.decision, r.signature_verdict) == ("accepted", "valid")
    assert "O=Aalborg Kommune // CVR:29189420" in r.signer
    rebild_org = smime_signer(smime, "CN=Mette Sørensen,O=Rebild Kommune // CVR:29189617,C=DK",
                              "mette.soerensen@aalborg.dk")
    assert manual(decide(smime_signed(smime, referral(), signer=rebild_org), by_subject), "wrong_signer")
    # the world's signer has no O attribute at all
    assert manual(decide(smime_signed(smime, referral()), by_subject), "wrong_signer")


# --- configuration -----------------------------------------------------------------------------

def test_signer_config_from_toml(tmp_path, pgp):
    f = tmp_path / "c.toml"
    spaced = " ".join(pgp.muni_fpr[i:i + 4] for i in range(0, 40, 4)).lower()
    f.write_text(f'''
[[triage.municipalities]]
name = "Aalborg Kommune"
domain = "aalborg.dk"
require_signature = true
pgp_fingerprints = ["{spaced}"]
smime_subjects = ["{AALBORG_ORG}"]
smime_emails = ["@Aalborg.dk", "Jobcenter@jobcenter.aalborg.dk"]
''', encoding="utf-8")
    m = load_settings(f).triage.municipalities[0]
    assert m.pgp_fingerprints == [pgp.muni_fpr]
    assert m.smime_emails == ["@aalborg.dk", "jobcenter@jobcenter.aalborg.dk"]
    s = load_settings(f)
    assert Settings.model_validate_json(s.model_dump_json()).triage.municipalities == s.triage.municipalities


@pytest.mark.parametrize("keys,message", [
    ("require_signature = true", "require_signature needs the signers"),
    ('pgp_fingerprints = ["F0C4CCCE81D5673E"]', "not a full OpenPGP fingerprint"),
    ('smime_emails = ["@rebild.dk"]', "not an address or @domain at aalborg.dk"),
    ('smime_emails = ["x@aalborg.dk.evil.example"]', "not an address or @domain at aalborg.dk"),
    ('smime_subjects = ["C=DK"]', "names no one"),
    ('smime_subjects = ["not a name"]', "not an RFC 4514 subject"),
])
def test_bad_signer_config_is_refused(tmp_path, keys, message):
    f = tmp_path / "c.toml"
    f.write_text(f'[[triage.municipalities]]\nname = "Aalborg Kommune"\ndomain = "aalborg.dk"\n{keys}\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(f)


# --- 5. sender authentication fails closed -----------------------------------------------------

AUTH = Settings(security=SecurityConfig(authserv_ids=["mx.rn.dk"]))


def with_auth(*headers: str, raw: bytes | None = None) -> bytes:
    return b"".join(b"Authentication-Results: " + h.encode() + b"\n" for h in headers) + (raw or referral())


@pytest.mark.parametrize("header,from_,expected", [
    # no trusted header at all
    (None, None, "authentication_failed"),
    ("evil.example; spf=pass smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk", None, "authentication_failed"),
    ("mx.rn.dk; none", None, "authentication_failed"),
    # an SPF fail is not offset by a DKIM pass of an unrelated (or look-alike, or other municipal) domain
    ("mx.rn.dk; spf=fail smtp.mailfrom=aalborg.dk; dkim=pass header.d=evil.example", None, "authentication_failed"),
    ("mx.rn.dk; spf=fail smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk.evil.example", None,
     "authentication_failed"),
    ("mx.rn.dk; spf=softfail smtp.mailfrom=aalborg.dk; dkim=pass header.d=rebild.dk", None, "authentication_failed"),
    ("mx.rn.dk; spf=none; dkim=pass header.d=evilaalborg.dk", None, "authentication_failed"),
    # SPF passing for someone else's domain is no pass for the From domain either
    ("mx.rn.dk; spf=pass smtp.mailfrom=bounce@mailer.example; dkim=none", None, "authentication_failed"),
    # aligned passes
    ("mx.rn.dk; spf=fail smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk", None, "accepted"),
    ("mx.rn.dk; spf=none; dkim=pass header.i=@aalborg.dk", None, "accepted"),
    ("mx.rn.dk; spf=pass smtp.mailfrom=mette.soerensen@aalborg.dk", None, "accepted"),
    ("mx.rn.dk; dmarc=pass header.from=aalborg.dk", None, "accepted"),
    ("mx.rn.dk; spf=fail; dkim=pass header.d=aalborg.dk", "mette@jobcenter.aalborg.dk", "accepted"),  # org parent
    ("mx.rn.dk; spf=fail; dkim=pass header.d=jobcenter.aalborg.dk", None, "accepted"),  # same organisation
    # ... but dmarc=fail always fails
    ("mx.rn.dk; spf=pass smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk; dmarc=fail", None,
     "authentication_failed"),
    # comments and quoted values are not results
    ("mx.rn.dk; dkim=pass (header.d=evil.example; spf=pass) header.d=aalborg.dk header.b=\"a;b\"", None, "accepted"),
    ("mx.rn.dk; dkim=pass (header.d=aalborg.dk) header.d=evil.example", None, "authentication_failed"),
])
def test_sender_authentication(header, from_, expected):
    raw = referral(from_=from_) if from_ else referral()
    r = decide(with_auth(header, raw=raw) if header else raw, AUTH)
    assert (r.manual_reason or r.decision) == expected
    if expected == "authentication_failed":
        assert r.reply is None and r.authentication == "failed"
        assert r.evidence_out()["decision"][0]["source"] == "authentication_results"
    else:
        assert r.authentication == "passed"


ALIGNED = "mx.rn.dk; spf=pass smtp.mailfrom=aalborg.dk; dkim=pass header.d=aalborg.dk; dmarc=pass header.from=aalborg.dk"


@pytest.mark.parametrize("settings", [AUTH, Settings()], ids=["authentication", "no_authentication"])
def test_second_from_header_is_ambiguous(settings):
    raw = referral().replace(b"\nTo:", b"\nFrom: attacker@evil.example\nTo:", 1)
    r = decide(with_auth(ALIGNED, raw=raw), settings)
    assert manual(r, "sender_ambiguous")
    # a second From naming another municipal address, before the first
    raw = b"From: jens@rebild.dk\n" + referral()
    assert manual(decide(with_auth(ALIGNED, raw=raw), settings), "sender_ambiguous")


def test_identical_from_headers_and_several_addresses():
    raw = referral()
    frm = next(ln for ln in raw.split(b"\n") if ln.startswith(b"From:"))
    r = decide(with_auth(ALIGNED, raw=frm + b"\n" + raw), AUTH)  # a copy (protected headers) is no second sender
    assert r.decision == "accepted"
    two = referral(from_="mette.soerensen@aalborg.dk, attacker@evil.example")
    assert manual(decide(with_auth(ALIGNED, raw=two), AUTH), "sender_ambiguous")
    assert manual(decide(two, Settings()), "sender_not_allowed")  # without authentication, as before


# --- the daemon: a follow-up is no way around the checks ---------------------------------------

def test_unsigned_followup_to_a_signed_case_goes_to_a_person(tmp_path, dovecot, smtp, ca, pgp, smime):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=f"""
[security]
gnupghome = "{pgp.home}"

[[triage.municipalities]]
name = "Aalborg Kommune"
domain = "aalborg.dk"
require_signature = true
pgp_fingerprints = ["{pgp.muni_fpr}"]
""")
    no_cpr = BODY.replace("CPR: 120385-1233\n", "")
    dovecot.append(pgp_mime_signed(pgp, referral(no_cpr, message_id="<signed@aalborg.dk>")))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    first = smtp.wait_for(1)[0]["message"]
    assert first["Subject"].startswith("Henvisningen mangler oplysninger [SME-")
    # an unsigned "answer" in the case's thread, with the CPR number: not merged, not answered
    dovecot.append(referral("Hej\n\nCPR-nummeret er 120385-1233.\n", subject="SV: " + first["Subject"],
                            attachments=[], message_id="<unsigned@aalborg.dk>",
                            headers={"In-Reply-To": first["Message-ID"], "References": first["Message-ID"]}))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    time.sleep(0.5)
    assert len(smtp.messages) == 1
    triaged = [e for e in map(json.loads, p.stdout.splitlines()) if e["event"] == "message_triaged"]
    assert [(e["decision"], e["reason"]) for e in triaged] == [("manual", "signature_required")]
    placed = {name: [raw for raw, _ in msgs] for name, msgs in dovecot.folder_messages().items()}
    assert any(b"<unsigned@aalborg.dk>" in raw for raw in placed["Triage/Manuel"])
    assert any(b"<signed@aalborg.dk>" in raw for raw in placed["Triage/Mangler"])
