"""Encrypted referrals through the real Dovecot and SMTP fixtures; data at rest; audit; retention;
and a whole corpus through the daemon with nothing personal in the log."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

import gnupg
import pytest

from tests.conftest import ROOT, Env
from tests.cryptofactory import (make_pgp_world, make_smime_world, pgp_mime_encrypted, pgp_mime_signed,
                                 smime_encrypted)
from tests.mailfactory import referral
from tests.test_daemon import place

SHARED = ROOT.parent / "shared" / "samples"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    pgp = make_pgp_world()
    smime = make_smime_world(tmp_path_factory.mktemp("smime"))
    staff_home = Path(tempfile.mkdtemp(prefix="gpgstaff", dir="/tmp"))
    staff_home.chmod(0o700)
    staff = gnupg.GPG(gnupghome=str(staff_home))
    key = staff.gen_key(staff.gen_key_input(key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH",
                                            subkey_curve="cv25519", name_real="SME arkiv",
                                            name_email="arkiv@rn.dk", no_protection=True, expire_date=0))
    pub = tmp_path_factory.mktemp("archive-key") / "archive.asc"
    pub.write_text(staff.export_keys(key.fingerprint))
    return pgp, smime, staff_home, pub


@pytest.fixture
def secure_env(tmp_path, dovecot, smtp, ca, worlds) -> Env:
    pgp, smime, _staff, pub = worlds
    return Env(tmp_path, dovecot, smtp.port, ca, extra=f"""
[security]
gnupghome = "{pgp.home}"
smime_cert_file = "{smime.folder / 'unit-cert.pem'}"
smime_key_file = "{smime.folder / 'unit-key.pem'}"
smime_ca_file = "{smime.folder / 'ca.pem'}"
archive_key_file = "{pub}"
archive_dir = "{tmp_path / 'archive'}"
""")


def intake(env: Env, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "intake", *args, "--config", str(env.config)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p


def test_encrypted_referrals_through_the_daemon(secure_env: Env, dovecot, smtp, worlds, tmp_path):
    pgp, smime, staff_home, _pub = worlds
    good_pgp = pgp_mime_encrypted(pgp, referral(message_id="<pgp@aalborg.dk>"))
    good_smime = smime_encrypted(smime, referral(message_id="<smime@aalborg.dk>", from_="a@rebild.dk"))
    lost = pgp_mime_encrypted(pgp, referral(message_id="<lost@aalborg.dk>"), to=pgp.muni_fpr)
    tampered = pgp_mime_signed(pgp, referral(message_id="<tamper@aalborg.dk>"), tamper=True)
    for raw in (good_pgp, good_smime, lost, tampered):
        dovecot.append(raw)
    p = secure_env.run_once()
    assert p.returncode == 0, p.stderr
    replies = smtp.wait_for(2)
    time.sleep(0.3)
    assert len(smtp.messages) == 2
    assert {r["message"]["In-Reply-To"] for r in replies} == {"<pgp@aalborg.dk>", "<smime@aalborg.dk>"}
    folders = place(dovecot.folder_messages())
    assert len(folders["Triage/Klar"]) == 2 and len(folders["Triage/Manuel"]) == 2
    reasons = {e.get("reason") for e in map(json.loads, p.stdout.splitlines()) if e["event"] == "message_triaged"}
    assert {"undecryptable", "bad_signature"} <= reasons

    con = sqlite3.connect(secure_env.db)
    rows = con.execute("SELECT message_id, encryption, signature_verdict, signer, archive_path FROM messages").fetchall()
    by_id = {r[0]: r for r in rows}
    assert by_id["<pgp@aalborg.dk>"][1:4] == ("pgp", "valid", pgp.muni_fpr)
    assert by_id["<smime@aalborg.dk>"][1] == "smime"
    assert by_id["<tamper@aalborg.dk>"][2] == "invalid"
    # raw messages at rest are ciphertext, readable with the archive key only
    for _mid, *_x, path in rows:
        data = Path(path).read_bytes()
        assert data.startswith(b"-----BEGIN PGP MESSAGE-----")
        assert b"Karen" not in data and b"120385" not in data
    staff = gnupg.GPG(gnupghome=str(staff_home))
    archived = staff.decrypt(Path(by_id["<pgp@aalborg.dk>"][4]).read_bytes()).data
    assert b"Message-ID: <pgp@aalborg.dk>" in archived and b"-----BEGIN PGP MESSAGE-----" in archived
    dump = "\n".join(con.iterdump())
    assert "1203851233" not in dump and "120385-1233" not in dump

    # staff tools: reveal and export are audited
    ref = con.execute("SELECT ref FROM cases ORDER BY id").fetchone()[0]
    shown = intake(secure_env, "cases", "show", ref, "--reveal", "--gnupghome", str(staff_home)).stdout
    assert "120385-1233" in shown
    out_dir = tmp_path / "export"
    files = [ln for ln in intake(secure_env, "export", ref, "--out", str(out_dir), "--gnupghome",
                                 str(staff_home)).stdout.splitlines() if ln.startswith(str(out_dir))]
    names = {Path(f).name for f in files}
    assert "01-besked.eml" in names and "01-02-Sociale_akter.pdf" in names
    assert all(Path(f).stat().st_mode & 0o777 == 0o600 for f in files) and out_dir.stat().st_mode & 0o777 == 0o700
    exported = message_from_bytes((out_dir / "01-besked.eml").read_bytes(), policy=policy.default)
    assert "Navn: Karen Lund" in exported.get_body(("plain",)).get_content()
    audit = con.execute("SELECT action, case_ref FROM audit ORDER BY id").fetchall()
    assert audit == [("reveal", ref), ("export", ref)]
    # a second export into the same folder overwrites nothing
    again = [ln for ln in intake(secure_env, "export", ref, "--out", str(out_dir), "--gnupghome",
                                 str(staff_home)).stdout.splitlines() if ln.startswith(str(out_dir))]
    assert {Path(f).name for f in again} == {"01-besked-2.eml", "01-02-Sociale_akter-2.pdf"}
    audit = con.execute("SELECT action, case_ref FROM audit ORDER BY id").fetchall()
    assert audit == [("reveal", ref), ("export", ref), ("export", ref)]

    # retention: nothing yet; a case closed long ago is purged (dry run first), and so are the
    # manual messages, which have no case
    assert intake(secure_env, "purge", "--dry-run").stdout.startswith("0 sager, 0 beskeder")
    intake(secure_env, "cases", "close", ref, "--reason", "afsluttet")
    later = "2099-01-01T00:00:00+00:00"
    dry = intake(secure_env, "purge", "--dry-run", "--now", later).stdout
    assert ref in dry and "ville blive fjernet" in dry
    assert "manual      opbevaring  30 dage: 0 sager, 2 beskeder, 2 arkivfiler" in dry
    path = Path(by_id["<pgp@aalborg.dk>"][4])
    assert path.exists()
    intake(secure_env, "purge", "--now", later)
    assert not path.exists()
    gone = {mid: not Path(by_id[mid][4]).exists() for mid in by_id}  # the S/MIME case is still open
    assert gone == {"<pgp@aalborg.dk>": True, "<lost@aalborg.dk>": True, "<tamper@aalborg.dk>": True,
                    "<smime@aalborg.dk>": False}
    name, cpr = con.execute("SELECT client_name, cpr_masked FROM cases WHERE ref = ?", (ref,)).fetchone()
    assert (name, cpr) == (None, None)
    month = time.strftime("%Y-%m")
    report = intake(secure_env, "report", "--month", month).stdout  # metadata kept for invoicing
    assert f"{month},Aalborg Kommune,psykologisk_undersoegelse,1" in report


def _corpus() -> list[bytes]:
    msgs = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.eml"))]
    if SHARED.is_dir():
        msgs += [p.read_bytes() for p in sorted(SHARED.glob("*.eml"))]
    return msgs


def _secrets(corpus: list[bytes]) -> set[str]:
    """CPR numbers (every form), client names and subject lines of the corpus."""
    out: set[str] = set()
    for raw in corpus:
        msg = message_from_bytes(raw, policy=policy.default)
        texts = [str(msg.get("subject", ""))]
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                try:
                    texts.append(part.get_content())
                except Exception:
                    pass
        if texts[0].strip():
            out.add(texts[0].strip())
        for t in texts:
            t = re.sub(r"<[^>]+>", "\t", t)
            for a, b in re.findall(r"(?<!\d)(\d{6})[- ]?(\d{4})(?!\d)", t):
                out |= {a + b, f"{a}-{b}", f"{a} {b}"}
            for m in re.finditer(r"(?:navn|Navn)[^:\t\n]*[:\t]\s*([^\n,\t]+)", t):
                name = m.group(1).strip()
                if len(name.split()) >= 2:
                    out.add(name)
    return out


def test_the_log_of_a_whole_corpus_holds_no_cpr_name_or_subject(env: Env, dovecot, smtp):
    corpus = _corpus()
    for raw in corpus:
        dovecot.append(raw)
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    log = p.stdout + p.stderr
    events = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert sum(e["event"] == "message_filed" for e in events) == len(corpus)
    secrets = _secrets(corpus)
    assert len(secrets) > 10
    leaked = sorted(s for s in secrets if s in log)
    assert leaked == []
