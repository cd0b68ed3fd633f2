"""Ops tools of issue 11 on real components (SQLite files, real `intake` processes, Dovecot, an
SMTP sink): uncertain replies as staff work (`intake outbox`, the digest), backup and the restore
drill, `intake check-config`."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import select

from intake.config import load_settings
from intake.edges.instance_lock import acquire
from intake.edges.store import AuditEvent, Case, MessageRecord, OutboxEntry, Store
from tests.conftest import ROOT, Env
from tests.mailfactory import BODY, referral
from tests.test_daemon import place
from tests.test_single_instance import start

NO_CPR = BODY.replace("CPR: 120385-1233\n", "")


def intake(*args: str, config: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    extra = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "intake", *args, *extra], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def store_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "store.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n{extra}')
    return cfg


def add_entries(store: Store, states: list[str]) -> tuple[str, list[int]]:
    """A case and one outbox entry per state (what the daemon would have written)."""
    ids = []
    with store.session() as s:
        case = Case(status="accepted", municipality="Aalborg Kommune", sender="a@aalborg.dk",
                    cpr_masked="120385-XXXX")
        s.add(case)
        s.flush()
        case.ref = f"SME-{case.created_at.year}-{case.id:05d}"
        for i, state in enumerate(states):
            mid = f"<reply{i}.{time.monotonic_ns()}@rn.dk>"
            e = OutboxEntry(dedupe_key=f"reply:<in{i}.{mid}>", case_id=case.id, kind="acknowledgement",
                            to_addr="a@aalborg.dk", from_addr="socialmedicin@rn.dk", reply_message_id=mid,
                            raw=(f"From: socialmedicin@rn.dk\r\nTo: a@aalborg.dk\r\nMessage-ID: {mid}\r\n"
                                 "Subject: Henvisning modtaget\r\n\r\nTak.\r\n").encode(), state=state)
            s.add(e)
            s.flush()
            ids.append(e.id)
        ref = case.ref
    return ref, ids


def table_ids(out: str) -> list[int]:
    """The IDs in a table printed by `intake outbox list` (not its "N svar" count line)."""
    return [int(ln.split()[0]) for ln in out.splitlines() if re.match(r"\d+\s", ln) and len(ln.split()) > 2]


# --- uncertain replies: staff work ---------------------------------------------------------------
def test_outbox_list_and_resolve_are_audited(tmp_path):
    cfg = store_config(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'intake.db'}")
    ref, (unc, failed, pending, sent, unc2) = add_entries(
        store, ["uncertain", "failed", "pending", "sent", "uncertain"])

    p = intake("outbox", "list", config=cfg)
    assert p.returncode == 0, p.stderr
    assert table_ids(p.stdout) == [unc, failed, unc2]
    assert ref in p.stdout and "usikker" in p.stdout and "fejlet" in p.stdout and "a@aalborg.dk" in p.stdout
    assert "120385" not in p.stdout and "Tak." not in p.stdout
    assert table_ids(intake("outbox", "list", "--state", "uncertain", config=cfg).stdout) == [unc, unc2]
    assert table_ids(intake("outbox", "list", "--state", "pending", config=cfg).stdout) == [pending]
    assert table_ids(intake("outbox", "list", "--state", "all", config=cfg).stdout) == [unc, failed, pending, sent, unc2]

    p = intake("outbox", "resolve", str(unc), "--sent", "--by", "hanne", config=cfg)
    assert p.returncode == 0, p.stderr
    p = intake("outbox", "resolve", str(failed), "--resend", config=cfg)
    assert p.returncode == 0, p.stderr
    for entry_id in (pending, sent, unc, 99999):  # only uncertain or failed; unknown ids
        p = intake("outbox", "resolve", str(entry_id), "--sent", config=cfg)
        assert p.returncode == 1 and p.stderr.startswith("intake: ") and "Traceback" not in p.stderr
    assert intake("outbox", "resolve", str(unc2), config=cfg).returncode == 2  # --sent or --resend

    with store.session() as s:
        e = s.get(OutboxEntry, unc)
        assert e.state == "sent" and e.sent_at is not None
        e = s.get(OutboxEntry, failed)
        assert e.state == "pending" and e.attempts == 0
        assert s.get(OutboxEntry, unc2).state == "uncertain"
        audit = list(s.exec(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(a.actor, a.action, a.case_ref) for a in audit] == [
        ("hanne", "outbox_resolve", ref), (os.environ.get("SUDO_USER") or __import__("getpass").getuser(),
                                           "outbox_resolve", ref)]
    assert audit[0].detail.startswith(f"sent #{unc}") and audit[1].detail.startswith(f"resend #{failed}")


def test_uncertain_is_never_resent_on_its_own_only_after_resolve(env: Env, dovecot, smtp):
    dovecot.append(referral(message_id="<first@aalborg.dk>"))
    assert env.run_once().returncode == 0  # the store exists, one reply went
    assert len(smtp.wait_for(1)) == 1
    store = Store(f"sqlite:///{env.db}")
    _ref, (unc, failed) = add_entries(store, ["uncertain", "failed"])
    with store.session() as s:
        unc_mid = s.get(OutboxEntry, unc).reply_message_id
        failed_mid = s.get(OutboxEntry, failed).reply_message_id
    for _ in range(2):  # --once (send_all, no backoff) and the long-running loop (send_due)
        assert env.run_once().returncode == 0
    proc = start(env)
    time.sleep(2.0)
    assert proc.stop() == 0
    time.sleep(0.3)
    assert len(smtp.messages) == 1
    with store.session() as s:
        assert s.get(OutboxEntry, unc).state == "uncertain" and s.get(OutboxEntry, failed).state == "failed"
    assert intake("outbox", "resolve", str(unc), "--resend", config=env.config).returncode == 0
    assert env.run_once().returncode == 0
    assert env.run_once().returncode == 0
    time.sleep(0.3)
    sent = [m["message"]["Message-ID"] for m in smtp.messages]
    assert sent.count(unc_mid) == 1 and failed_mid not in sent and len(sent) == 2


def test_digest_lists_uncertain_and_failed_replies_masked(tmp_path):
    cfg = store_config(tmp_path, '[cases]\nstaff_address = "visitation@rn.dk"\n')
    settings = load_settings(cfg)
    store = Store(settings.store.url)
    ref, (unc, failed, _sent) = add_entries(store, ["uncertain", "failed", "sent"])
    from intake.service.scheduler import Scheduler

    monday = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)
    assert Scheduler(settings, store).run(monday)["digests"] == 1
    with store.session() as s:
        digest = s.exec(select(OutboxEntry).where(OutboxEntry.kind == "digest")).one()
    text = digest.raw.decode()
    import email

    msg = email.message_from_bytes(digest.raw)
    body = msg.get_payload(decode=True).decode()
    assert "2 svar skal afklares" in str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert f"#{unc}  usikker  acknowledgement  til a@aalborg.dk  sag {ref}" in body
    assert f"#{failed}  fejlet" in body and "intake outbox resolve" in body
    assert "120385" not in text


# --- backup and restore --------------------------------------------------------------------------
def test_backup_is_private_never_overwrites_and_postgres_gets_pg_dump(tmp_path):
    cfg = store_config(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'intake.db'}")
    add_entries(store, ["pending", "sent"])
    out = tmp_path / "b" / "intake.backup"
    out.parent.mkdir()
    p = intake("backup", "--out", str(out), config=cfg)
    assert p.returncode == 0, p.stderr
    assert str(out) in p.stdout and f"{out.stat().st_size} bytes" in p.stdout and "schema revision" in p.stdout
    assert "intake.db.hmac-key is NOT in the backup" in p.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(x.name for x in out.parent.iterdir()) == ["intake.backup"]  # no temp files left
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
    con.close()
    before = out.read_bytes()
    p = intake("backup", "--out", str(out), config=cfg)
    assert p.returncode == 1 and "refusing to overwrite" in p.stderr and out.read_bytes() == before

    pg = tmp_path / "pg.toml"
    pg.write_text('[store]\nurl = "postgresql+psycopg://intake:s3cret@db.example:5433/intake"\n'
                  f'hmac_key_file = "{tmp_path / "k"}"\n')
    p = intake("backup", "--out", "/srv/backup/intake.dump", config=pg)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert ("pg_dump --format=custom --file=/srv/backup/intake.dump "
            "postgresql://intake@db.example:5433/intake") in p.stderr
    assert "s3cret" not in p.stderr + p.stdout
    p = intake("restore", "--from", "/srv/backup/intake.dump", config=pg)
    assert p.returncode == 1 and "pg_restore --clean --if-exists --no-owner --single-transaction " \
        "--dbname=postgresql://intake@db.example:5433/intake /srv/backup/intake.dump" in p.stderr
    assert "intake restore --config CONFIG --mark-uncertain" in p.stderr and "s3cret" not in p.stderr


def test_restore_refuses_while_the_store_is_locked_and_over_data_without_force(tmp_path):
    cfg = store_config(tmp_path)
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    store = Store(url)
    add_entries(store, ["pending", "sending", "sent", "uncertain"])
    out = tmp_path / "intake.backup"
    assert intake("backup", "--out", str(out), config=cfg).returncode == 0
    lock = acquire(url, "intake run")  # a daemon (this test process) holds the store
    try:
        p = intake("restore", "--from", str(out), "--force", config=cfg)
        assert p.returncode == 2 and "holds the store" in p.stderr and "Traceback" not in p.stderr
    finally:
        lock.release()
    p = intake("restore", "--from", str(out), config=cfg)
    assert p.returncode == 1 and "--force" in p.stderr
    with store.session() as s:  # untouched
        assert sorted(e.state for e in s.exec(select(OutboxEntry))) == ["pending", "sending", "sent", "uncertain"]
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database")
    p = intake("restore", "--from", str(garbage), "--force", config=cfg)
    assert p.returncode == 1 and "not a SQLite database" in p.stderr
    # into an empty place: no --force needed; pending and sending became uncertain
    other = tmp_path / "new"
    other.mkdir()
    cfg2 = store_config(other)
    p = intake("restore", "--from", str(out), config=cfg2)
    assert p.returncode == 0, p.stderr
    assert "2 outbox entries pending or sending at backup time marked uncertain" in p.stdout
    assert "intake.db.hmac-key is missing" in p.stdout
    restored = Store(f"sqlite:///{other / 'intake.db'}")
    with restored.session() as s:
        assert sorted(e.state for e in s.exec(select(OutboxEntry))) == ["sent", "uncertain", "uncertain", "uncertain"]
    assert stat.S_IMODE((other / "intake.db").stat().st_mode) == 0o600


def test_restore_drill(tmp_path, dovecot, smtp, ca):
    """Backup while the daemon drains, stop, restore, continue: every message filed once, no
    message answered twice, the replies in doubt listed and resolved by a person."""
    from intake.service.backup import backup

    env = Env(tmp_path, dovecot, smtp.port, ca)
    env.config.write_text(env.config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 10\nfetch_batch = 2", 1))
    msgs = {}
    for i in range(40):
        mid = f"<drill{i}@aalborg.dk>"
        msgs[mid] = referral(NO_CPR if i % 4 == 3 else BODY, from_=f"Sagsbehandler <s{i}@aalborg.dk>",
                             message_id=mid)
        dovecot.append(msgs[mid])
    daemon = start(env)
    try:
        assert smtp.wait_for(1, timeout=60)
        info = backup(load_settings(env.config), tmp_path / "drill.backup")  # in the middle of the drain
        assert smtp.wait_for(len(smtp.messages) + 4, timeout=60)
    finally:
        assert daemon.stop() == 0
    assert 0 < info.counts["messages"] < len(msgs), info.counts  # the backup was taken mid-drain
    after = {}
    for i in range(40, 45):  # mail that comes while the store is being restored
        mid = f"<drill{i}@aalborg.dk>"
        after[mid] = referral(from_=f"Sagsbehandler <s{i}@aalborg.dk>", message_id=mid)
        dovecot.append(after[mid])
    msgs.update(after)

    p = intake("restore", "--from", str(info.path), config=env.config)
    assert p.returncode == 1 and "--force" in p.stderr  # the store holds data
    p = intake("restore", "--from", str(info.path), "--force", config=env.config)
    assert p.returncode == 0, p.stderr
    n_uncertain = int(re.search(r"(\d+) outbox entries pending or sending", p.stdout).group(1))
    n_dropped = int(re.search(r"(\d+) were dropped unsent", p.stdout).group(1))
    assert len(re.findall(r"^  dropped: old outbox #\d+ \w+ to s\d+@aalborg.dk \(case ", p.stdout, re.M)) == n_dropped
    assert "not triaged again" in p.stdout
    assert env.run_once().returncode == 0  # the daemon continues
    assert env.run_once().returncode == 0
    time.sleep(0.5)

    folders = place(dovecot.folder_messages())
    assert folders["INBOX"] == []
    for mid, raw in msgs.items():
        holders = [name for name, raws in folders.items() for r in raws if r == raw.replace(b"\r\n", b"\n")]
        assert len(holders) == 1 and holders[0].startswith("Triage/"), (mid, holders)
    answered = Counter(m["message"]["In-Reply-To"] for m in smtp.messages)
    assert max(answered.values()) == 1, answered
    assert set(after) <= set(answered)  # new mail after the restore is answered

    store = Store(f"sqlite:///{env.db}")
    with store.session() as s:
        doubt = {e.id: e.reply_message_id for e in s.exec(select(OutboxEntry).where(OutboxEntry.state == "uncertain"))}
    assert len(doubt) == n_uncertain
    listed = intake("outbox", "list", config=env.config)
    assert table_ids(listed.stdout) == sorted(doubt)
    sent_ids = {m["message"]["Message-ID"] for m in smtp.messages}
    for entry_id, mid in doubt.items():  # staff check each one: it went, or it did not
        how = "--sent" if mid in sent_ids else "--resend"
        assert intake("outbox", "resolve", str(entry_id), how, "--by", "drill", config=env.config).returncode == 0
    assert env.run_once().returncode == 0
    time.sleep(0.5)
    answered = Counter(m["message"]["In-Reply-To"] for m in smtp.messages)
    assert max(answered.values()) == 1, answered
    assert table_ids(intake("outbox", "list", config=env.config).stdout) == []
    with store.session() as s:
        known = {r.message_id for r in s.exec(select(MessageRecord))}
    # Every message the restored store knows is answered once. Mail filed between the backup and
    # the stop is in its triage folder but not in the store (the restore says so): not triaged
    # again, and a reply of it still pending at the stop was lost with the store.
    assert set(msgs) & known <= set(answered)
    assert set(msgs) - set(answered) <= set(msgs) - known
    assert len(set(msgs) - set(answered)) == n_dropped  # and the restore named each of them


# --- check-config --------------------------------------------------------------------------------
def good_config(tmp_path: Path, extra: str = "", mailbox_extra: str = "") -> Path:
    secret = tmp_path / "imap-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = tmp_path / "intake.toml"
    cfg.write_text(f"""
[mailbox]
host = "imap.example.dk"
username = "socialmedicin"
password_file = "{secret}"
ca_file = "{ca_file}"
{mailbox_extra}

[smtp]
host = "smtp.example.dk"

[store]
url = "sqlite:///{tmp_path / 'intake.db'}"
{extra}
""")
    return cfg


def check(cfg: Path, *extra: str) -> tuple[int, str, str]:
    t0 = time.monotonic()
    p = intake("check-config", *extra, config=cfg)
    assert "Traceback" not in p.stderr and time.monotonic() - t0 < 20
    return p.returncode, p.stdout, p.stderr


def test_check_config_good(tmp_path):
    cfg = good_config(tmp_path)
    rc, out, err = check(cfg)
    assert rc == 0, err
    assert err == "" and out.strip().endswith("configuration ok")
    assert f'mailbox.password_file = "{tmp_path / "imap-password"}"' in out  # the path, never the content
    assert "ok: templates" in out and "ok: rules" in out
    assert "\npw\n" not in out


@pytest.mark.parametrize("name,edit,expected", [
    ("toml", lambda t: t + "\n[broken\n", "is not valid TOML"),
    ("unknown key", lambda t: t.replace('host = "imap.example.dk"', 'host = "imap.example.dk"\nhots = 1'),
     "unknown key mailbox.hots"),
    ("bad value", lambda t: t.replace('host = "smtp.example.dk"', 'host = "smtp.example.dk"\nport = "x"'),
     "smtp.port"),
    ("missing key", lambda t: t.replace('host = "imap.example.dk"\n', ""), "mailbox.host: required key missing"),
    ("missing file", lambda t: t.replace("ca.pem", "nowhere.pem"), "mailbox.ca_file: {tmp}/nowhere.pem does not exist"),
    ("secret missing", lambda t: t.replace("imap-password", "no-password"),
     "mailbox.password_file: {tmp}/no-password does not exist"),
    ("plaintext", lambda t: t.replace('host = "smtp.example.dk"', 'host = "smtp.example.dk"\nsecurity = "plain"'),
     "allow_plaintext"),
    ("store folder", lambda t: t.replace("intake.db", "nowhere/intake.db"), "store.url: the folder"),
])
def test_check_config_problems(tmp_path, name, edit, expected):
    cfg = good_config(tmp_path)
    cfg.write_text(edit(cfg.read_text()))
    rc, out, err = check(cfg)
    assert rc == 1, (name, out, err)
    lines = err.strip().splitlines()
    assert any(expected.format(tmp=tmp_path) in ln for ln in lines), (name, err)
    assert all(ln.startswith("intake: check-config: ") for ln in lines), err


def test_check_config_refuses_a_world_readable_secret(tmp_path):
    key = tmp_path / "hmac-key"
    key.write_text("k" * 64)
    key.chmod(0o644)
    cfg = good_config(tmp_path, extra=f'hmac_key_file = "{key}"')
    (tmp_path / "imap-password").chmod(0o640)
    rc, _out, err = check(cfg)
    assert rc == 1
    assert f"store.hmac_key_file: {key} is mode 0644, open to group or others; it holds a secret: chmod 600 {key}" in err
    assert f"chmod 600 {tmp_path / 'imap-password'}" in err
    assert "k" * 64 not in err + _out
    key.chmod(0o600)
    (tmp_path / "imap-password").chmod(0o400)
    assert check(cfg)[0] == 0


def test_check_config_bad_rules_and_templates_missing_config(tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    for f in (ROOT / "templates").iterdir():
        (tdir / f.name).write_text(f.read_text())
    (tdir / "digest.txt.j2").write_text((tdir / "digest.txt.j2").read_text().replace("{{ date }}", "{{ date }"))
    (tdir / "reminder.txt.j2").write_text((tdir / "reminder.txt.j2").read_text().replace("{{ close_date }}", "{{ no_such_value }}"))
    rules = tmp_path / "rules.toml"
    rules.write_text("[examinations\n")
    cfg = good_config(tmp_path, extra=f'[triage]\ntemplates_dir = "templates"\nrules_file = "rules.toml"\n')
    rc, _out, err = check(cfg)
    assert rc == 1
    assert f"triage.rules_file: {rules} is not valid TOML" in err
    assert "template digest: syntax error" in err and "template reminder: UndefinedError" in err
    assert len(err.strip().splitlines()) == 3, err
    rc, _out, err = check(tmp_path / "nope.toml")
    assert rc == 1 and "cannot read" in err


def test_check_config_connect_and_store_schema(tmp_path):
    cfg = good_config(tmp_path)
    Store(f"sqlite:///{tmp_path / 'intake.db'}")  # an existing store
    os.chmod(tmp_path / "intake.db", 0o600)
    rc, out, err = check(cfg)
    assert rc == 0, err
    assert "ok: store" in out
    rc, out, err = check(cfg, "--connect")
    try:
        import intake.service.connectcheck  # noqa: F401
    except ImportError:
        assert rc == 1 and "connection checks are not available" in err
    else:
        assert rc == 1 and "connect: " in err  # imap.example.dk is not reachable from a test


def test_check_config_hides_a_url_password_and_needs_no_network_for_postgresql(tmp_path):
    key = tmp_path / "hmac-key"
    key.write_text("k" * 64)
    key.chmod(0o600)
    cfg = good_config(tmp_path)
    cfg.write_text(cfg.read_text().replace(
        f'url = "sqlite:///{tmp_path / "intake.db"}"',
        f'url = "postgresql+psycopg://intake:s3cret@db.invalid/intake"\nhmac_key_file = "{key}"'))
    rc, out, err = check(cfg)
    assert rc == 0, err
    assert 'store.url = "postgresql+psycopg://intake:***@db.invalid/intake"' in out
    assert "schema not checked: no network without --connect" in out
    assert "s3cret" not in out + err


def test_postgresql_backup_and_restore_with_the_printed_commands(tmp_path):
    """The pg_dump / pg_restore lines intake prints work as printed, and `restore --mark-uncertain`
    does the outbox step after them."""
    import shlex
    import shutil
    import tempfile

    from intake.edges.devservers import Postgres
    from tests.conftest import tempfile_dir

    base = Path(tempfile.mkdtemp(prefix="pg-", dir=tempfile_dir()))
    pg = Postgres(base).start()
    try:
        key = tmp_path / "hmac-key"
        key.write_text("k" * 64)
        key.chmod(0o600)
        cfg = tmp_path / "pg.toml"
        cfg.write_text(f'[store]\nurl = "{pg.url}"\nhmac_key_file = "{key}"\n')
        store = Store(pg.url)
        _ref, ids = add_entries(store, ["pending", "sending", "sent", "failed"])
        dump = tmp_path / "intake.dump"

        def printed(p: subprocess.CompletedProcess, tool: str) -> list[str]:
            line = next(ln.strip() for ln in p.stderr.splitlines() if ln.strip().startswith(tool + " "))
            argv = shlex.split(line)
            return [str(pg.bin / tool), *argv[1:]]

        p = intake("backup", "--out", str(dump), config=cfg)
        assert p.returncode == 1
        subprocess.run(printed(p, "pg_dump"), check=True, timeout=60, capture_output=True)
        with store.session() as s:  # after the backup: everything changes
            for e in s.exec(select(OutboxEntry)):
                e.state = "sent"
                s.add(e)
        p = intake("restore", "--from", str(dump), config=cfg)
        assert p.returncode == 1
        subprocess.run(printed(p, "pg_restore"), check=True, timeout=60, capture_output=True)
        store.engine.dispose()
        p = intake("restore", "--mark-uncertain", config=cfg)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("2 outbox entries pending or sending at backup time marked uncertain")
        with Store(pg.url).session() as s:
            states = {e.id: e.state for e in s.exec(select(OutboxEntry))}
        assert states == dict(zip(ids, ["uncertain", "uncertain", "sent", "failed"]))
        assert table_ids(intake("outbox", "list", config=cfg).stdout) == [ids[0], ids[1], ids[3]]
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
