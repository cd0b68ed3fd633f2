"""The daemon against a real Dovecot and a real SMTP server: folders, replies, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from intake.edges.devservers import SmtpSink
from tests.conftest import Env
from tests.mailfactory import BODY, referral

FOLDERS = {"accepted": "Triage/Klar", "incomplete": "Triage/Mangler", "redirect": "Triage/Mediconnect",
           "manual": "Triage/Manuel", "ignored": "Triage/Ignoreret"}


def corpus() -> dict[str, tuple[bytes, str]]:
    """message-id -> (raw, expected decision)"""
    items = [
        (referral(message_id="<ok@aalborg.dk>"), "accepted"),
        (referral(BODY.replace("CPR: 120385-1233\n", ""), message_id="<nocpr@aalborg.dk>"), "incomplete"),
        (referral(BODY + "\nHenvisning til Klinisk Funktion, LÆ 271 udfyldt.\n", message_id="<kf@aalborg.dk>"), "redirect"),
        (referral(from_="jens@gmail.com", message_id="<private@gmail.com>"), "manual"),
        (referral(headers={"Auto-Submitted": "auto-replied"}, message_id="<ooo@aalborg.dk>"), "ignored"),
        (b"\x01\x02garbage \xff\xfe\r\n" * 50, "manual"),
        (referral(BODY.replace("Karen Lund", "Åse Nørby"), subject="Henvisning: Åse Nørby 120385-1233",
                  from_="Team <team@jobcenter.rebild.dk>", message_id="<sub@rebild.dk>"), "accepted"),
    ]
    return {f"m{i}": item for i, item in enumerate(items)}


def norm(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def place(folders: dict) -> dict[str, list[bytes]]:
    """Folder -> messages (line endings normalised: IMAP stores CRLF)."""
    return {name: [norm(raw) for raw, _flags in msgs] for name, msgs in folders.items()}


def events(stdout: str) -> list[dict]:
    return [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]


def drain_corpus(env: Env, dovecot) -> subprocess.CompletedProcess:
    """The corpus through `--once`: every message in exactly its decision's folder."""
    msgs = corpus()
    for raw, _ in msgs.values():
        dovecot.append(raw)
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    folders = place(dovecot.folder_messages())
    assert folders["INBOX"] == []
    for key, (raw, decision) in msgs.items():
        holders = [name for name, raws in folders.items() if norm(raw) in raws]
        assert holders == [FOLDERS[decision]], (key, holders)
    return p


def test_once_drains_into_the_right_folders_with_the_right_replies(env: Env, dovecot, smtp):
    p = drain_corpus(env, dovecot)
    replies = smtp.wait_for(4, timeout=10)
    assert len(replies) == 4  # accepted x2, incomplete, redirect
    kinds = sorted(r["message"]["Subject"].split(" [")[0] for r in replies)
    assert kinds == ["Henvisning modtaget", "Henvisning modtaget", "Henvisningen mangler oplysninger",
                     "Sendes via Mediconnect Proces"]
    for r in replies:
        m = r["message"]
        assert m["Auto-Submitted"] == "auto-replied"
        assert re.search(r"\[SME-\d{4}-\d{5}\]", m["Subject"])
        assert m["In-Reply-To"]
        text = r["raw"].decode("utf-8", "replace") + m.get_content()
        assert not re.search(r"120385[- ]?1233|1203851233", text)
        assert r["rcpt_tos"][0].endswith((".dk",)) and "gmail" not in r["rcpt_tos"][0]
    assert {r["rcpt_tos"][0] for r in replies} == {"mette.soerensen@aalborg.dk", "team@jobcenter.rebild.dk"}
    # a second run finds nothing and sends nothing
    p2 = env.run_once()
    assert p2.returncode == 0
    time.sleep(0.5)
    assert len(smtp.messages) == 4
    # keywords tell staff why
    flags = {f for name, ms in dovecot.folder_messages().items() if name == "Triage/Mangler" for _r, fl in ms for f in fl}
    assert b"mangler-cpr" in flags and b"sme-incomplete" in flags
    # logs: JSON lines, no CPR, no names, no subjects
    out = p.stdout
    assert events(out) and all("event" in e for e in events(out))
    for secret in ("1203851233", "120385-1233", "Karen Lund", "Åse Nørby", "Henvisning: "):
        assert secret not in out


def test_store_keeps_no_plaintext_cpr(env: Env, dovecot, smtp):
    dovecot.append(referral(message_id="<ok@aalborg.dk>"))
    assert env.run_once().returncode == 0
    dump = "\n".join(sqlite3.connect(env.db).iterdump())
    assert "1203851233" not in dump and "120385-1233" not in dump
    assert "120385-XXXX" in dump


def test_smtp_down_then_back(tmp_path, dovecot, ca):
    from intake.edges.devservers import free_port
    port = free_port()
    env = Env(tmp_path, dovecot, port, ca)
    dovecot.append(referral(message_id="<a@aalborg.dk>"))
    dovecot.append(referral(BODY.replace("CPR: 120385-1233\n", ""), message_id="<b@aalborg.dk>"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    assert any(e["event"] == "smtp_unavailable" for e in events(p.stdout))
    assert place(dovecot.folder_messages())["INBOX"] == []  # filed even though SMTP was down
    sink = SmtpSink(ca, port=port).start()
    try:
        p = env.run_once()
        assert p.returncode == 0
        assert len(sink.wait_for(2, timeout=10)) == 2
        env.run_once()
        time.sleep(0.3)
        assert len(sink.messages) == 2
    finally:
        sink.stop()


def test_daemon_retries_smtp_while_running(tmp_path, dovecot, ca):
    from intake.edges.devservers import free_port
    port = free_port()
    env = Env(tmp_path, dovecot, port, ca)
    proc = env.start()
    try:
        dovecot.append(referral(message_id="<later@aalborg.dk>"))
        time.sleep(2.0)
        sink = SmtpSink(ca, port=port).start()
        try:
            assert len(sink.wait_for(1, timeout=20)) == 1
        finally:
            sink.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_idle_delivers_a_message_appended_while_running(env: Env, dovecot, smtp):
    proc = env.start()
    try:
        time.sleep(1.5)  # connected and idling
        t0 = time.monotonic()
        dovecot.append(referral(message_id="<idle@aalborg.dk>"))
        replies = smtp.wait_for(1, timeout=20)
        assert len(replies) == 1
        assert time.monotonic() - t0 < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert any(e["event"] == "imap_connected" and e["idle"] for e in events(out))
    assert any(e["event"] == "daemon_stopped" for e in events(out))


def test_uidvalidity_change_does_not_answer_twice(env: Env, dovecot, smtp):
    raw = referral(message_id="<uv@aalborg.dk>")
    dovecot.append(raw)
    assert env.run_once().returncode == 0
    assert len(smtp.wait_for(1, timeout=10)) == 1
    # the same message back in the inbox (a restore), and a resend with the same Message-ID
    dovecot.append(raw)
    dovecot.append(raw.replace(b"Sociale og", b"Sociale  og"))
    con = sqlite3.connect(env.db)
    con.execute("UPDATE checkpoints SET uidvalidity = uidvalidity + 1")
    con.commit()
    con.close()
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    time.sleep(0.5)
    assert len(smtp.messages) == 1
    assert place(dovecot.folder_messages())["INBOX"] == []


def test_oversized_message_goes_to_manual_unparsed(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca)
    env.config.write_text(env.config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 10\nmax_message_bytes = 5000"))
    dovecot.append(referral(attachments=[("big.pdf", b"x" * 20000, "application/pdf")], message_id="<big@aalborg.dk>"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    assert len(place(dovecot.folder_messages())["Triage/Manuel"]) == 1
    assert any(e.get("reason") == "too_large" for e in events(p.stdout))
    assert smtp.messages == []


def test_copy_fallback_without_move(env: Env, dovecot, smtp):
    for raw, _ in list(corpus().values())[:3]:
        dovecot.append(raw)
    p = env.run_once(env={"INTAKE_IMAP_NO_MOVE": "1"})
    assert p.returncode == 0, p.stderr
    folders = place(dovecot.folder_messages())
    assert folders["INBOX"] == []
    assert sum(len(v) for v in folders.values()) == 3


@pytest.mark.parametrize("point", ["before_commit", "after_commit", "after_move", "after_smtp_send"])
@pytest.mark.parametrize("move", [True, False])
def test_sigkill_anywhere_loses_nothing_and_answers_once(env: Env, dovecot, smtp, point, move):
    msgs = corpus()
    for raw, _ in msgs.values():
        dovecot.append(raw)
    extra = {} if move else {"INTAKE_IMAP_NO_MOVE": "1"}
    killed = 0
    for n in (1, 2, 3):  # kill at the n-th passage of the point, then again, then again
        p = env.run_once(env={"INTAKE_FAILPOINTS": f"{point}:{n}", **extra})
        assert p.returncode in (0, -signal.SIGKILL), p.stderr
        killed += p.returncode == -signal.SIGKILL
    assert killed >= 1
    p = env.run_once(env=extra)  # and a clean run to finish
    assert p.returncode == 0, p.stderr
    folders = place(dovecot.folder_messages())
    for key, (raw, decision) in msgs.items():
        holders = [name for name, raws in folders.items() for r in raws if r == norm(raw)]
        assert holders == [FOLDERS[decision]], (point, key, holders)
    time.sleep(0.5)
    to_msgids = [r["message"]["In-Reply-To"] for r in smtp.messages]
    assert sorted(to_msgids) == sorted(["<ok@aalborg.dk>", "<nocpr@aalborg.dk>", "<kf@aalborg.dk>", "<sub@rebild.dk>"])


def test_sigterm_exits_cleanly(env: Env, dovecot, smtp):
    proc = env.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_plaintext_is_refused_without_allow(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca)
    env.config.write_text(env.config.read_text().replace('security = "tls"', 'security = "plain"'))
    p = env.run_once()
    assert p.returncode == 2 and "allow_plaintext" in p.stderr


def test_wrong_ca_is_refused(tmp_path, dovecot, smtp, ca):
    from intake.edges.devservers import TestCA
    other = TestCA(tmp_path / "other")
    env = Env(tmp_path, dovecot, smtp.port, other)
    dovecot.append(referral())
    p = env.run_once()
    assert p.returncode == 1
    assert any(e["event"] == "imap_error" for e in events(p.stdout))
    assert len(place(dovecot.folder_messages())["INBOX"]) == 1


def test_smtp_implicit_tls_with_auth(tmp_path, dovecot, ca):
    sink = SmtpSink(ca, auth=("socialmedicin", "smtp-secret"), implicit_tls=True).start()
    try:
        env = Env(tmp_path, dovecot, sink.port, ca)
        (tmp_path / "smtp-password").write_text("smtp-secret\n")
        (tmp_path / "smtp-password").chmod(0o600)  # secret files readable by others are refused
        env.config.write_text(env.config.read_text().replace(
            'security = "starttls"', f'security = "tls"\nusername = "socialmedicin"\npassword_file = "{tmp_path / "smtp-password"}"'))
        dovecot.append(referral(message_id="<auth@aalborg.dk>"))
        p = env.run_once()
        assert p.returncode == 0, p.stderr
        assert len(sink.wait_for(1, timeout=10)) == 1, p.stdout
    finally:
        sink.stop()


def test_polling_when_idle_is_off(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca)
    env.config.write_text(env.config.read_text().replace(
        "timeout_seconds = 10", "timeout_seconds = 10\nidle = false\npoll_seconds = 1", 1))
    proc = env.start()
    try:
        time.sleep(1.5)
        dovecot.append(referral(message_id="<poll@aalborg.dk>"))
        assert len(smtp.wait_for(1, timeout=15)) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert any(e["event"] == "imap_connected" and not e["idle"] for e in events(out))


def test_reconnects_after_the_imap_server_restarts(env: Env, dovecot, smtp):
    proc = env.start()
    try:
        # connected for sure (not a guess at start-up time): the first referral is answered
        dovecot.append(referral(message_id="<before@aalborg.dk>"))
        assert len(smtp.wait_for(1, timeout=60)) == 1
        dovecot.stop()
        time.sleep(1.0)
        dovecot.start()  # same ports, same mail
        dovecot.append(referral(message_id="<back@aalborg.dk>"))
        assert len(smtp.wait_for(2, timeout=60)) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    evs = [e["event"] for e in events(out)]
    assert "imap_error" in evs and evs.count("imap_connected") >= 2


def test_postgresql_store(tmp_path, dovecot, smtp, ca):
    """The same drain with the store in a real PostgreSQL (any SQLAlchemy URL by config)."""
    import shutil
    import tempfile

    from intake.edges.devservers import Postgres
    from tests.conftest import tempfile_dir

    base = Path(tempfile.mkdtemp(prefix="pg-", dir=tempfile_dir()))
    pg = Postgres(base).start()
    try:
        env = Env(tmp_path, dovecot, smtp.port, ca,
                  extra=f'[store]\nurl = "{pg.url}"\nhmac_key_file = "{tmp_path / "hmac"}"\n')
        (tmp_path / "hmac").write_text("k" * 64)
        env.config.write_text(env.config.read_text().replace(f'[store]\nurl = "sqlite:///{env.db}"\n', ""))
        drain_corpus(env, dovecot)
        assert len(smtp.wait_for(4)) == 4
        assert env.run_once().returncode == 0
        time.sleep(0.3)
        assert len(smtp.messages) == 4
        assert not env.db.exists()
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def imap_sessions(master) -> list:  # noqa: ANN001 - psutil.Process
    """Dovecot's imap session processes (children come and go while we look)."""
    import psutil

    found = []
    for p in master.children(recursive=True):
        try:
            if p.name() == "imap":
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def test_a_stalled_imap_connection_is_detected_and_renewed(env: Env, dovecot, smtp):
    """The server process behind the daemon's connection freezes (SIGSTOP): no answer within
    timeout_seconds (10 s here) must end that connection and open a new one."""
    import psutil

    proc = env.start()
    frozen = []
    try:
        master = psutil.Process(dovecot.proc.pid)
        deadline = time.monotonic() + 30  # the daemon's session, however slow its start-up
        while not (frozen := imap_sessions(master)):
            assert time.monotonic() < deadline, "no imap session process found"
            time.sleep(0.2)
        time.sleep(1.0)  # logged in, drained the empty inbox, idling
        for p in frozen:
            p.suspend()
        time.sleep(0.5)
        dovecot.append(referral(message_id="<stall@aalborg.dk>"))
        assert len(smtp.wait_for(1, timeout=60)) == 1
    finally:
        for p in frozen:
            try:
                p.resume()
            except psutil.Error:
                pass
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    evs = [e["event"] for e in events(out)]
    assert "imap_error" in evs and evs.count("imap_connected") >= 2


def test_a_broken_store_stops_the_daemon_with_an_error_and_loses_nothing(env: Env, dovecot, smtp):
    """Not a connection problem: exit non-zero (systemd restarts it), mail stays in the inbox."""
    dovecot.append(referral(message_id="<ro@aalborg.dk>"))
    assert env.run_once().returncode == 0  # creates the store
    dovecot.append(referral(message_id="<ro2@aalborg.dk>"))
    con = sqlite3.connect(env.db)
    con.execute("CREATE TRIGGER no_more BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    con.commit()
    con.close()
    proc = env.start()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert any(e["event"] == "imap_worker_failed" for e in events(out))
    assert len(place(dovecot.folder_messages())["INBOX"]) == 1
