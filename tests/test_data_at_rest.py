"""Hostile file names, the export of a case (new files only, 0600, no symlink followed, audit
after the write) and retention per decision. The store is a SQLite file; the archive is read
through a stand-in for `archive.read` (the gpg round trip is in test_secure_daemon.py)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from intake.edges import archive
from intake.config import ConfigError, Settings, load_settings
from intake.core.mimeparse import safe_filename
from intake.edges.retention import purge
from intake.service.staff import ExportError, export
from intake.edges.store import AuditEvent, Case, MessageRecord, OutboxEntry, Store
from tests.mailfactory import PDF, referral

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


# --- safe file names -----------------------------------------------------------------------------

@pytest.mark.parametrize("evil,safe", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\mette\\Akter\\journal.pdf", "journal.pdf"),
    ("/tmp/x/.hidden.pdf", "hidden.pdf"),
    ("akt\x00er.pdf", "akter.pdf"),
    ("..", "bilag-4.pdf"),
    ("Sociale akter.pdf", "Sociale akter.pdf"),
    ("Lægeerklæring Åse Øster.pdf", "Lægeerklæring Åse Øster.pdf"),
    # bidi override: "faktura<RLO>fdp.exe" shows as "fakturaexe.pdf"
    ("faktura\u202efdp.exe", "fakturafdp.exe"),
    ("\u2066akter\u2069\u200b\u200d\ufeff.pdf", "akter.pdf"),  # isolates, zero-width, BOM
    ("ak\u0085ter\u009b2J.pdf", "akter2J.pdf"),  # C1 controls (NEL, CSI)
    ("a\u2028b\u2029c.pdf", "abc.pdf"),  # line and paragraph separators
    ("CON.pdf", "_CON.pdf"),
    ("nul", "_nul"),
    ("Aux.tar.gz", "_Aux.tar.gz"),
    ("com1.txt", "_com1.txt"),
    ("LPT9", "_LPT9"),
    ("con .pdf", "_con .pdf"),
    ("CONSOLE.pdf", "CONSOLE.pdf"),
    ("notat.pdf. . .", "notat.pdf"),
    ("notat   ", "notat"),
    ('Henvisning: "Karen" <x>|y?*.pdf', "Henvisning_ _Karen_ _x__y__.pdf"),
    ("journal.pdf:Zone.Identifier", "journal.pdf_Zone.Identifier"),
    ("\u202e\u200b", "bilag-4.pdf"),
    (None, "bilag-4.pdf"),
])
def test_safe_filename(evil, safe):
    assert safe_filename(evil, "application/pdf", 4) == safe


def test_long_utf8_name_is_cut_to_200_bytes_keeping_the_extension(tmp_path):
    name = "æ" * 150 + ".pdf"  # 304 bytes
    assert len(name.encode()) == 304
    safe = safe_filename(name, "application/pdf", 1)
    assert len(safe.encode("utf-8")) <= 200 and safe.endswith(".pdf")
    assert safe == "æ" * 98 + ".pdf"  # whole characters only
    no_ext = safe_filename("ø" * 150, "application/pdf", 1)
    assert len(no_ext.encode()) <= 200 and set(no_ext) == {"ø"}
    odd = safe_filename("a" * 250 + ".thisisnotanextension", "application/pdf", 1)
    assert len(odd.encode()) <= 200
    # and it can be written (the kernel's limit is 255 bytes)
    (tmp_path / ("01-02-" + safe)).write_bytes(b"x")


# --- export --------------------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path, monkeypatch):
    """A store with one case of one archived message; archive.read returns the file's bytes."""
    db = tmp_path / "intake.db"
    settings = Settings.model_validate({"store": {"url": f"sqlite:///{db}"}})
    store = Store(settings.store.url)
    monkeypatch.setattr(archive, "read", lambda path, gnupghome=None, passphrase=None: Path(path).read_bytes())

    def add_case(raw: bytes, ref: str = "SME-2026-00001") -> str:
        arch = tmp_path / "archive" / f"{ref}.eml.gpg"
        arch.parent.mkdir(exist_ok=True)
        arch.write_bytes(raw)
        with store.session() as s:
            case = Case(ref=ref, status="accepted", client_name="Karen Lund")
            s.add(case)
            s.flush()
            s.add(_rec(decision="accepted", case_id=case.id, archive_path=str(arch)))
        return ref

    return settings, store, add_case


def _rec(**kw) -> MessageRecord:
    base = dict(content_hash=os.urandom(8).hex(), folder="INBOX", uidvalidity=1, uid=1, size=10,
                decision="manual", target_folder="Triage/Manuel")
    return MessageRecord(**{**base, **kw})


def _audit(store: Store) -> list[tuple[str, str | None]]:
    with store.session() as s:
        return [(e.action, e.detail) for e in s.exec(select(AuditEvent).order_by(AuditEvent.id))]


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_export_same_names_hostile_names_mode_0600(world, tmp_path):
    settings, store, add_case = world
    long_name = "Lægeerklæring " + "ø" * 150 + ".pdf"
    ref = add_case(referral(attachments=[
        ("akter.pdf", PDF + b"first", "application/pdf"),
        ("akter.pdf", PDF + b"second", "application/pdf"),
        ("faktura\u202efdp.exe", b"MZ", "application/octet-stream"),
        ("CON.pdf", PDF, "application/pdf"),
        (long_name, PDF + b"long", "application/pdf"),
    ]))
    out = tmp_path / "ud"
    files = export(settings, ref, out, None)
    names = [f.name for f in files]
    assert names[:5] == ["01-besked.eml", "01-02-akter.pdf", "01-03-akter.pdf", "01-04-fakturafdp.exe",
                         "01-05-_CON.pdf"]
    assert (out / "01-02-akter.pdf").read_bytes() == PDF + b"first"
    assert (out / "01-03-akter.pdf").read_bytes() == PDF + b"second"
    assert len(names) == 6 and names[5].endswith(".pdf") and len(names[5].encode()) <= 210
    assert files[5].read_bytes() == PDF + b"long"
    assert _mode(out) == 0o700
    assert all(_mode(f) == 0o600 and f.is_file() and not f.is_symlink() for f in files)
    assert sorted(os.listdir(out)) == sorted(names)
    assert _audit(store) == [("export", f"1 messages, 6 files to {out}")]


def test_export_never_follows_a_symlink_nor_overwrites(world, tmp_path):
    settings, store, add_case = world
    ref = add_case(referral(attachments=[("akter.pdf", PDF + b"new", "application/pdf")]))
    out = tmp_path / "ud"
    out.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"ORIGINAL")
    victim.chmod(0o644)
    (out / "01-02-akter.pdf").symlink_to(victim)
    (out / "01-besked.eml").symlink_to(tmp_path / "does-not-exist")  # dangling: must not be created
    (out / "01-02-akter-2.pdf").write_bytes(b"earlier export")
    files = export(settings, ref, out, None)
    assert [f.name for f in files] == ["01-besked-2.eml", "01-02-akter-3.pdf"]
    assert victim.read_bytes() == b"ORIGINAL" and _mode(victim) == 0o644
    assert (out / "01-02-akter.pdf").is_symlink() and os.readlink(out / "01-02-akter.pdf") == str(victim)
    assert not (tmp_path / "does-not-exist").exists()
    assert (out / "01-02-akter-2.pdf").read_bytes() == b"earlier export"
    assert (out / "01-02-akter-3.pdf").read_bytes() == PDF + b"new"
    assert all(_mode(f) == 0o600 for f in files)


def test_export_refuses_a_folder_open_to_others_or_a_symlinked_one(world, tmp_path):
    settings, store, add_case = world
    ref = add_case(referral())
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(ExportError, match="closed to others"):
        export(settings, ref, shared, None)
    assert os.listdir(shared) == []
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ExportError, match="symlink"):
        export(settings, ref, link, None)
    assert os.listdir(real) == []
    assert [a for a, _ in _audit(store)] == ["export_failed", "export_failed"]


def test_export_audit_records_a_failure_after_partial_write(world, tmp_path, monkeypatch):
    settings, store, add_case = world
    ref = add_case(referral())
    with store.session() as s:  # a second message whose archive file cannot be read
        case = s.exec(select(Case).where(Case.ref == ref)).one()
        s.add(_rec(decision="accepted", case_id=case.id, archive_path=str(tmp_path / "missing.gpg")))
    with pytest.raises(FileNotFoundError):
        export(settings, ref, tmp_path / "ud", None)
    assert _audit(store) == [("export_failed", f"2 files written to {tmp_path / 'ud'} before FileNotFoundError")]
    with pytest.raises(LookupError):
        export(settings, "SME-2026-09999", tmp_path / "ud2", None)
    assert not (tmp_path / "ud2").exists()


# --- retention per decision ---------------------------------------------------------------------

def _days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


@pytest.fixture
def filled(tmp_path):
    """Records of every decision at chosen ages, each with an archive file and, for cases, a reply."""
    db = tmp_path / "intake.db"
    store = Store(f"sqlite:///{db}")
    arch = tmp_path / "archive"
    arch.mkdir()
    made: dict[str, dict] = {}

    def file_for(key: str) -> str:
        p = arch / f"{key}.eml.gpg"
        p.write_bytes(b"-----BEGIN PGP MESSAGE-----")
        return str(p)

    with store.session() as s:
        def loose(key: str, decision: str, age: float) -> None:
            r = _rec(decision=decision, received_at=_days_ago(age), filed_at=_days_ago(age),
                     sender=f"{key}@example.net", archive_path=file_for(key))
            s.add(r)
            s.flush()
            made[key] = {"rec": r.id}

        def case(key: str, status: str, age_closed: float | None, decision: str, **kw) -> None:
            c = Case(status=status, created_at=_days_ago(200), updated_at=_days_ago(age_closed or 150),
                     closed_at=_days_ago(age_closed) if status == "closed" else None,
                     client_name="Karen Lund", cpr_masked="120385-XXXX", cpr_hmac="h", sender="a@aalborg.dk",
                     municipality="Aalborg Kommune", examinations="psykologisk_undersoegelse", **kw)
            s.add(c)
            s.flush()
            c.ref = f"SME-2026-{c.id:05d}"
            r = _rec(decision=decision, case_id=c.id, received_at=_days_ago(200), filed_at=_days_ago(200),
                     sender="a@aalborg.dk", archive_path=file_for(key))
            s.add(r)
            s.flush()
            o = OutboxEntry(dedupe_key=f"reply:{key}", message_record_id=r.id, case_id=c.id,
                            kind="acknowledgement", to_addr="a@aalborg.dk", from_addr="socialmedicin@rn.dk",
                            reply_message_id=f"<{key}@rn.dk>", raw=b"Kaere Mette, Karen Lund", state="sent")
            s.add(o)
            s.flush()
            made[key] = {"rec": r.id, "case": c.id, "ref": c.ref, "out": o.id}

        loose("ignored_old", "ignored", 8)
        loose("ignored_new", "ignored", 6)
        loose("manual_old", "manual", 31)
        loose("manual_new", "manual", 29)
        case("accepted_open", "accepted", None, "accepted", accepted_at=_days_ago(200))
        case("accepted_closed", "closed", 31, "accepted", accepted_at=_days_ago(200))
        case("incomplete_closed_new", "closed", 29, "incomplete")
        case("incomplete_closed_old", "closed", 40, "incomplete")
        case("redirect_old", "redirected", 31, "redirect", redirect_reason="klinisk_funktion")
        case("incomplete_open", "incomplete", None, "incomplete")
    return store, made, tmp_path


def _settings(tmp_path: Path, **security) -> Settings:
    return Settings.model_validate({"store": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
                                    "security": security})


def _purged(store: Store, made: dict) -> set[str]:
    with store.session() as s:
        return {k for k, v in made.items() if s.get(MessageRecord, v["rec"]).purged_at is not None}


def test_retention_defaults_cover_every_decision(filled):
    store, made, tmp = filled
    dry = purge(_settings(tmp), store, NOW, dry_run=True)
    assert _purged(store, made) == set()  # a dry run changes nothing
    expect = {"ignored_old", "manual_old", "accepted_closed", "incomplete_closed_old", "redirect_old"}
    assert {(p.decision, p.case_ref) for p in dry} == {
        ("ignored", None), ("manual", None), ("accepted", made["accepted_closed"]["ref"]),
        ("incomplete", made["incomplete_closed_old"]["ref"]), ("redirect", made["redirect_old"]["ref"])}
    done = purge(_settings(tmp), store, NOW)
    assert [(p.decision, p.case_ref) for p in done] == [(p.decision, p.case_ref) for p in dry]
    assert _purged(store, made) == expect
    for key in made:
        assert (tmp / "archive" / f"{key}.eml.gpg").exists() == (key not in expect), key
    with store.session() as s:
        for key in ("ignored_old", "manual_old"):
            r = s.get(MessageRecord, made[key]["rec"])
            assert r.archive_path is None and r.sender is None
        assert s.get(MessageRecord, made["manual_new"]["rec"]).sender == "manual_new@example.net"
        for key in ("accepted_closed", "incomplete_closed_old", "redirect_old"):
            c = s.get(Case, made[key]["case"])
            assert (c.client_name, c.cpr_masked, c.cpr_hmac) == (None, None, None) and c.purged_at
            assert c.municipality == "Aalborg Kommune" and c.examinations  # the report's metadata
            assert s.get(OutboxEntry, made[key]["out"]).raw == b""
        for key in ("accepted_open", "incomplete_open", "incomplete_closed_new"):
            c = s.get(Case, made[key]["case"])
            assert c.client_name == "Karen Lund" and c.purged_at is None
            assert s.get(OutboxEntry, made[key]["out"]).raw != b""
    assert purge(_settings(tmp), store, NOW) == []  # nothing twice


def test_retention_days_by_decision_from_the_config(filled):
    store, made, tmp = filled
    settings = _settings(tmp, retention_days=30,
                         retention_days_by_decision={"manual": 60, "ignored": 1, "accepted": 10, "redirect": 90})
    assert [settings.security.retention_for(d) for d in ("accepted", "incomplete", "redirect", "manual", "ignored")] \
        == [10, 30, 90, 60, 1]
    purge(settings, store, NOW)
    assert _purged(store, made) == {"ignored_old", "ignored_new", "accepted_closed", "incomplete_closed_old"}
    # later, the rest of what has run out
    purge(settings, store, NOW + dt.timedelta(days=60))
    assert _purged(store, made) == {"ignored_old", "ignored_new", "accepted_closed", "incomplete_closed_old",
                                    "incomplete_closed_new", "manual_old", "manual_new", "redirect_old"}


@pytest.mark.parametrize("section", [
    "retention_days_by_decision = { manual = -1 }",
    "retention_days_by_decision = { closed = 5 }",
    "retention_days_by_decision = { manual = \"soon\" }",
    "retention_days = -3",
])
def test_bad_retention_config_is_refused(tmp_path, section):
    f = tmp_path / "c.toml"
    f.write_text(f"[security]\n{section}\n")
    with pytest.raises(ConfigError, match="retention_days"):
        load_settings(f)


def test_an_archive_file_a_kept_record_still_names_stays(filled):
    store, made, tmp = filled
    with store.session() as s:  # the manual message was requeued and is now an open case's
        shared = s.get(MessageRecord, made["manual_old"]["rec"]).archive_path
        s.get(MessageRecord, made["accepted_open"]["rec"]).archive_path = shared
    purge(_settings(tmp), store, NOW)
    assert "manual_old" in _purged(store, made) and Path(shared).exists()


def test_a_message_that_came_after_its_case_was_purged_goes_too(filled):
    store, made, tmp = filled
    later = NOW + dt.timedelta(days=100)
    purge(_settings(tmp), store, later)  # everything but the open cases
    late = tmp / "archive" / "late.eml.gpg"
    late.write_bytes(b"x")
    with store.session() as s:
        r = _rec(decision="manual", reason="followup_closed_case", case_id=made["accepted_closed"]["case"],
                 received_at=later, filed_at=later, archive_path=str(late))
        s.add(r)
        s.flush()
        rid = r.id
    assert purge(_settings(tmp), store, later + dt.timedelta(days=29)) == []
    items = purge(_settings(tmp), store, later + dt.timedelta(days=31))
    assert [(p.decision, p.case_ref, p.messages) for p in items] == [
        ("accepted", made["accepted_closed"]["ref"], 1)]
    assert not late.exists()
    with store.session() as s:
        assert s.get(MessageRecord, rid).purged_at is not None


def test_purge_dry_run_shows_each_decision(filled):
    store, made, tmp = filled
    cfg = tmp / "intake.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp / "intake.db"}"\n'
                   "[security.retention_days_by_decision]\nmanual = 14\n")
    p = subprocess.run([sys.executable, "-m", "intake", "purge", "--dry-run", "--now", NOW.isoformat(),
                        "--config", str(cfg)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "3 sager, 6 beskeder: rå indhold og personoplysninger ville blive fjernet" in lines
    per = {ln.split()[0]: ln for ln in lines if ln.startswith("  ")}
    assert per["ignored"].endswith("opbevaring   7 dage: 0 sager, 1 beskeder, 1 arkivfiler, 0 svartekster")
    assert per["manual"].endswith("opbevaring  14 dage: 0 sager, 2 beskeder, 2 arkivfiler, 0 svartekster")
    assert per["accepted"].endswith("opbevaring  30 dage: 1 sager, 1 beskeder, 1 arkivfiler, 1 svartekster")
    assert "1 sager" in per["incomplete"] and "1 sager" in per["redirect"]
    assert any(made["redirect_old"]["ref"] in ln and "redirect" in ln for ln in lines)
    assert _purged(store, made) == set()
