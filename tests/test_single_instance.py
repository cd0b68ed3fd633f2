"""One daemon per store, one sender per reply (issue 9), on real components: SQLite files, a real
PostgreSQL, real `intake` processes, real locks, a real SMTP sink.

- the instance lock: a second daemon and `intake remind` refuse while one runs; SIGKILL frees it;
- the outbox claim: two processes race over the same pending entries, each is delivered once;
- the HMAC key file: created once under a race, short or empty keys refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from intake.config import ConfigError, StoreConfig, load_settings
from intake.edges.devservers import Postgres, write_config
from intake.edges.hmackey import create_key, load_hmac_key, read_key
from intake.edges.instance_lock import StoreLocked, acquire
from intake.edges.store import OutboxEntry, Store
from tests.conftest import ROOT, Env, tempfile_dir
from tests.mailfactory import referral

N_ENTRIES = 30


# --- fixtures: a PostgreSQL cluster for the module, a fresh database per test ------------------
@pytest.fixture(scope="module")
def pg_cluster():
    base = Path(tempfile.mkdtemp(prefix="pg-", dir=tempfile_dir()))
    pg = Postgres(base).start()
    yield pg
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


_db_counter = iter(range(1, 10**6))


def new_pg_database(pg: Postgres) -> str:
    name = f"intake_{os.getpid()}_{next(_db_counter)}"
    eng = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return pg.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def store_url(kind, tmp_path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'intake.db'}"
    return new_pg_database(request.getfixturevalue("pg_cluster"))


def make_env(tmp_path: Path, dovecot, smtp, ca, url: str, extra: str = "") -> Env:
    """The test daemon's config with the store at `url` (SQLite file or PostgreSQL)."""
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=extra)
    if not url.startswith("sqlite"):
        (tmp_path / "hmac").write_text("k" * 64)
        cfg = env.config.read_text().replace(f'[store]\nurl = "sqlite:///{env.db}"\n',
                                             f'[store]\nurl = "{url}"\nhmac_key_file = "{tmp_path / "hmac"}"\n')
        env.config.write_text(cfg)
    return env


class Running:
    """A daemon process whose stdout (JSON lines) is read by a thread as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.events: list[dict] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in list(self.events):
                if e["event"] == name:
                    return e
            if self.proc.poll() is not None:
                self._t.join(5)
                found = [e for e in self.events if e["event"] == name]
                if found:
                    return found[0]
                raise AssertionError(f"daemon exited {self.proc.returncode} before {name}: "
                                     f"{self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} within {timeout}s: {[e['event'] for e in self.events]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._t.join(5)
        return rc


def start(env: Env) -> Running:
    r = Running(env.start())
    r.wait_event("daemon_started")
    return r


def intake(env: Env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", *args, "--config", str(env.config)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def assert_refused(p: subprocess.CompletedProcess, url: str, holder_pid: int) -> None:
    """Exit code 2, nothing on stdout, one line on stderr naming the store and the holder."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"intake: another intake daemon holds the store {url} (pid {holder_pid}")
    assert "Traceback" not in p.stderr


# --- the instance lock: daemons and `intake remind` -----------------------------------------------
def test_a_second_daemon_on_the_same_store_refuses(kind, store_url, tmp_path, dovecot, smtp, ca):
    env = make_env(tmp_path, dovecot, smtp, ca, store_url)
    first = start(env)
    try:
        assert_refused(env.run_once(), store_url, first.proc.pid)
        second = subprocess.run([sys.executable, "-m", "intake", "run", "--config", str(env.config)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert_refused(second, store_url, first.proc.pid)
        # the first is undisturbed: it still answers
        dovecot.append(referral(message_id="<one@aalborg.dk>"))
        assert len(smtp.wait_for(1, timeout=30)) == 1
    finally:
        assert first.stop() == 0
    assert env.run_once().returncode == 0  # released on a clean stop


def test_sigkill_of_the_holder_frees_the_store_and_only_the_holder_marks_sends_uncertain(
        kind, store_url, tmp_path, dovecot, smtp, ca):
    env = make_env(tmp_path, dovecot, smtp, ca, store_url)
    first = start(env)
    store = Store(store_url)
    with store.session() as s:  # a delivery the running daemon has in flight
        entry = OutboxEntry(dedupe_key="test:in-flight", kind="acknowledgement", to_addr="a@aalborg.dk",
                            from_addr="socialmedicin@rn.dk", reply_message_id="<in-flight@rn.dk>",
                            raw=b"Subject: x\r\n\r\nx\r\n", state="sending")
        s.add(entry)
    try:
        assert_refused(env.run_once(), store_url, first.proc.pid)
        with store.session() as s:  # the refused starter did not touch it
            assert s.get(OutboxEntry, entry.id).state == "sending"
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = start(env)  # the OS (flock) / the server (session gone) released the lock
    try:
        assert second.wait_event("replies_uncertain")["outbox_ids"] == [entry.id]
        dovecot.append(referral(message_id="<after-kill@aalborg.dk>"))
        assert len(smtp.wait_for(1, timeout=30)) == 1
    finally:
        assert second.stop() == 0
    with store.session() as s:
        assert s.get(OutboxEntry, entry.id).state == "uncertain"
    store.engine.dispose()


def test_remind_refuses_while_the_daemon_runs(kind, store_url, tmp_path, dovecot, smtp, ca):
    env = make_env(tmp_path, dovecot, smtp, ca, store_url)
    daemon = start(env)
    try:
        assert_refused(intake(env, "remind", "--now", "2026-11-23T07:05:00+01:00"), store_url, daemon.proc.pid)
    finally:
        assert daemon.stop() == 0
    p = intake(env, "remind", "--now", "2026-11-23T07:05:00+01:00")
    assert p.returncode == 0, p.stderr


def test_the_lock_is_exclusive_in_one_process_too_and_released(store_url):
    held = acquire(store_url)
    try:
        with pytest.raises(StoreLocked) as e:
            acquire(store_url)
        assert f"(pid {os.getpid()}" in str(e.value)
    finally:
        held.release()
    acquire(store_url).release()


def test_only_a_lock_holder_may_mark_sends_uncertain(store_url):
    store = Store(store_url)
    lock = acquire(store_url)
    lock.release()
    with pytest.raises(RuntimeError):
        store.recover_interrupted_sends(lock)
    with acquire(store_url) as held:
        assert store.recover_interrupted_sends(held) == []
    store.engine.dispose()


def test_a_daemon_that_loses_its_postgresql_lock_stops(pg_cluster, tmp_path, dovecot, smtp, ca):
    """The lock's session is cut (a server restart, a network cut): the daemon cannot know that
    no other has started since, so it stops (exit 1; systemd starts it again, with the lock)."""
    url = new_pg_database(pg_cluster)
    env = make_env(tmp_path, dovecot, smtp, ca, url, extra="[daemon]\nlock_check_seconds = 0.5\n")
    daemon = start(env)
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        killed = c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name LIKE 'sme-intake pid %' AND datname = current_database()")).all()
    eng.dispose()
    assert killed == [(True,)]
    assert daemon.proc.wait(30) == 1
    daemon.stop()
    assert any(e["event"] == "instance_lock_lost" for e in daemon.events)


# --- the outbox claim: two senders, one store, one delivery per entry -----------------------------
def fill_outbox(url: str, n: int) -> list[str]:
    store = Store(url)
    mids = []
    with store.session() as s:
        for i in range(n):
            mid = f"<race-{i}@rn.dk>"
            raw = (f"From: socialmedicin@rn.dk\r\nTo: a{i}@aalborg.dk\r\nMessage-ID: {mid}\r\n"
                   f"Subject: race {i}\r\n\r\nreply {i}\r\n").encode()
            s.add(OutboxEntry(dedupe_key=f"race:{i}", kind="acknowledgement", to_addr=f"a{i}@aalborg.dk",
                              from_addr="socialmedicin@rn.dk", reply_message_id=mid, raw=raw))
            mids.append(mid)
    store.engine.dispose()
    return mids


def outbox_racer() -> None:
    """Run in a subprocess: read the due entries, say so, wait for 'go', send them."""
    from intake.service import logs
    from intake.config import OutboxConfig, SmtpConfig
    from intake.edges.outbox import Outbox

    url, port, ca_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    logs.configure("warning", stream=sys.stderr)
    store = Store(url)
    outbox = Outbox(store, SmtpConfig(host="localhost", port=port, security="starttls", ca_file=ca_file),
                    OutboxConfig())
    due = store.due_replies()
    print(json.dumps({"due": len(due)}), flush=True)
    sys.stdin.readline()
    sent, failed = asyncio.run(outbox.send_batch(due))
    print(json.dumps({"sent": sent, "failed": failed}), flush=True)


def test_two_senders_race_over_the_same_entries_and_each_is_delivered_once(store_url, smtp, ca):
    mids = fill_outbox(store_url, N_ENTRIES)
    code = "from tests.test_single_instance import outbox_racer; outbox_racer()"
    procs = [subprocess.Popen([sys.executable, "-c", code, store_url, str(smtp.port), str(ca.ca_file)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT) for _ in range(2)]
    try:
        # both hold the same stale list of all 30 pending entries before either sends
        assert [json.loads(p.stdout.readline())["due"] for p in procs] == [N_ENTRIES, N_ENTRIES]
        for p in procs:
            p.stdin.write("go\n")
        for p in procs:
            p.stdin.flush()
        results = [json.loads(p.stdout.readline()) for p in procs]
        for p in procs:
            assert p.wait(60) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [r["failed"] for r in results] == [0, 0]
    assert sum(r["sent"] for r in results) == N_ENTRIES
    smtp.wait_for(N_ENTRIES, timeout=10)
    time.sleep(0.3)  # anything late would show up here
    got = [m["message"]["Message-ID"] for m in smtp.messages]
    assert sorted(got) == sorted(mids)  # every entry once: no double, none lost
    store = Store(store_url)
    with store.session() as s:
        rows = list(s.exec(select(OutboxEntry)))
    store.engine.dispose()
    assert {(e.state, e.attempts) for e in rows} == {("sent", 1)}  # a lost claim counts no attempt
    print(f"race: {N_ENTRIES} entries, sent per process {[r['sent'] for r in results]}, "
          f"{len(got)} delivered, {len(got) - len(set(got))} doubles")


# --- the HMAC key file ------------------------------------------------------------------------------
def hmac_racer() -> None:
    """Run in a subprocess: for each folder read from stdin, load (create) the key and print it."""
    base = load_settings(None)
    for line in sys.stdin:
        db = Path(line.strip()) / "intake.db"
        settings = base.model_copy(update={"store": StoreConfig(url=f"sqlite:///{db}")})
        print(load_hmac_key(settings).decode(), flush=True)


def test_two_starters_create_one_hmac_key(tmp_path):
    rounds = 40
    code = "from tests.test_single_instance import hmac_racer; hmac_racer()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    try:
        for i in range(rounds):
            folder = tmp_path / f"r{i}"
            for p in procs:
                p.stdin.write(f"{folder}\n")
            for p in procs:
                p.stdin.flush()
            keys = [p.stdout.readline().strip() for p in procs]
            key_file = folder / "intake.db.hmac-key"
            assert keys[0] == keys[1] == key_file.read_text(), (i, keys)
            assert len(bytes.fromhex(keys[0])) == 32
            assert key_file.stat().st_mode & 0o777 == 0o600
            assert sorted(x.name for x in folder.iterdir()) == ["intake.db.hmac-key"]  # no temp files left
        for p in procs:
            p.stdin.close()
            assert p.wait(30) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_a_late_creator_never_replaces_the_key(tmp_path):
    key_file = tmp_path / "intake.db.hmac-key"
    create_key(key_file)
    first = key_file.read_bytes()
    create_key(key_file)  # lost the race: the winner's key stays
    assert key_file.read_bytes() == first
    assert [x.name for x in tmp_path.iterdir()] == ["intake.db.hmac-key"]


@pytest.mark.parametrize("content,says", [(b"", "is empty"), (b"\n", "is empty"),
                                          (b"0123456789abcdef\n", "holds 16 bytes"),
                                          (b"x" * 31, "holds 31 bytes")])
def test_a_short_or_empty_key_is_refused(tmp_path, content, says):
    key = tmp_path / "key"
    key.write_bytes(content)
    with pytest.raises(ConfigError, match=f"HMAC key file .* {says}; at least 32"):
        read_key(key)
    beside = tmp_path / "intake.db.hmac-key"  # the generated kind, cut short (a crash, an edit)
    beside.write_bytes(content)
    settings = load_settings(None).model_copy(update={"store": StoreConfig(url=f"sqlite:///{tmp_path / 'intake.db'}")})
    with pytest.raises(ConfigError, match=says):
        load_hmac_key(settings)
    assert beside.read_bytes() == content  # refused, not replaced


def test_a_32_byte_key_is_accepted_and_a_short_one_stops_the_daemon(tmp_path, ca):
    key = tmp_path / "hmac"
    key.write_bytes(os.urandom(31) + b"k")  # random bytes, but not ending in CR/LF (a trailing newline is not key)
    assert read_key(key) == key.read_bytes()
    key.write_text("too-short\n")
    config = write_config(tmp_path, SimpleNamespace(users={"socialmedicin": "x"}, imaps_port=1), 1, ca,
                          extra=f'hmac_key_file = "{key}"\n')
    p = subprocess.run([sys.executable, "-m", "intake", "run", "--once", "--config", str(config)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 2
    assert p.stderr.strip() == (f"intake: HMAC key file {key} holds 9 bytes; at least 32 are required "
                                "(e.g. `openssl rand -hex 32`); refusing a weak key")
