"""The daemon through a fault-injecting TCP proxy (tests/faultproxy.py) to a real Dovecot and a
real SMTP sink: connections reset mid-FETCH, stalled, slowed, ended by the server during IDLE,
refused with throttling answers. Every time: no message lost (each in exactly one triage
folder), no reply twice, each fault logged once, and no reconnect spin."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from intake.edges.devservers import Dovecot, SmtpSink, free_port
from tests.conftest import Env, tempfile_dir
from tests.faultproxy import Fault, FaultProxy
from tests.mailfactory import referral
from tests.test_daemon import FOLDERS, corpus, events, norm, place

FAST = "[daemon]\nreconnect_initial_seconds = 0.2\nreconnect_max_seconds = 2.0\n"
ANSWERED = ["<ok@aalborg.dk>", "<nocpr@aalborg.dk>", "<kf@aalborg.dk>", "<sub@rebild.dk>"]
BIG = referral(attachments=[("scan.pdf", b"%PDF-1.4 " + os.urandom(150_000).hex().encode()[:200_000],
                             "application/pdf")], message_id="<big@aalborg.dk>")


@pytest.fixture
def plain_dovecot(ca):
    """Dovecot that also takes plaintext IMAP on loopback: a proxy can only read and write
    IMAP lines (inject BYE, answer NO) when they are not encrypted."""
    base = Path(tempfile_dir()) / f"dovecot-{os.getpid()}-{free_port()}"
    d = Dovecot(base, ca, extra_conf="ssl = yes\ndisable_plaintext_auth = no\n").start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def proxied_env(tmp_path, dovecot, smtp_port, ca, proxy: FaultProxy, *, plain: bool = False,
                timeout: float = 10) -> Env:
    env = Env(tmp_path, dovecot, smtp_port, ca, extra=FAST)
    text = env.config.read_text().replace(f"port = {dovecot.imaps_port}\n", f"port = {proxy.port}\n")
    text = text.replace("timeout_seconds = 10", f"timeout_seconds = {timeout}", 1)
    if plain:
        text = text.replace('security = "tls"', 'security = "plain"\nallow_plaintext = true', 1)
    env.config.write_text(text)
    return env


def run_until(env: Env, done, timeout: float = 90) -> list[dict]:
    """Run the daemon until `done()` holds, then SIGTERM it; its log events."""
    proc = env.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # a double reply, if any, would show up now
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return events(out)


def append_all(dovecot) -> dict[str, tuple[bytes, str | None]]:
    msgs = {k: (raw, d) for k, (raw, d) in corpus().items()}
    msgs["big"] = (BIG, None)
    for raw, _ in msgs.values():
        dovecot.append(raw)
    return msgs


def assert_nothing_lost(dovecot, msgs) -> None:
    folders = place(dovecot.folder_messages())
    assert folders["INBOX"] == []
    for key, (raw, decision) in msgs.items():
        holders = [name for name, raws in folders.items() for r in raws if r == norm(raw)]
        assert len(holders) == 1, (key, holders)
        if decision:
            assert holders == [FOLDERS[decision]], (key, holders)


def assert_one_reply_each(smtp) -> None:
    ids = Counter(r["message"]["In-Reply-To"] for r in smtp.messages)
    assert all(n == 1 for n in ids.values()), ids
    assert set(ANSWERED) <= set(ids), ids


def inbox_empty_and_answered(dovecot, smtp, n: int = 4):
    def done() -> bool:
        return len(smtp.messages) >= n and not place(dovecot.folder_messages())["INBOX"]
    return done


@pytest.mark.parametrize("fault", [Fault("reset", after=60_000), Fault("stall", after=60_000),
                                   Fault("reset", after=2_500)])
def test_broken_imap_connection_loses_nothing(tmp_path, dovecot, smtp, ca, fault):
    """Reset or stalled mid-FETCH of the bodies (60 kB in), or early (2.5 kB: around login)."""
    proxy = FaultProxy(dovecot.imaps_port).start()
    proxy.plan[1] = fault
    try:
        env = proxied_env(tmp_path, dovecot, smtp.port, ca, proxy, timeout=2)
        msgs = append_all(dovecot)
        evs = run_until(env, inbox_empty_and_answered(dovecot, smtp))
    finally:
        proxy.stop()
    assert_nothing_lost(dovecot, msgs)
    assert_one_reply_each(smtp)
    names = [e["event"] for e in evs]
    assert names.count("imap_error") == 1, names
    assert names.count("imap_recovered") == 1
    assert 2 <= len(proxy.started) <= 3  # reconnected, no spin


def test_slow_imap_server_is_only_slow(tmp_path, dovecot, smtp, ca):
    proxy = FaultProxy(dovecot.imaps_port).start()
    proxy.default = Fault("slow", delay=0.002)
    try:
        env = proxied_env(tmp_path, dovecot, smtp.port, ca, proxy, timeout=5)
        msgs = append_all(dovecot)
        evs = run_until(env, inbox_empty_and_answered(dovecot, smtp))
    finally:
        proxy.stop()
    assert_nothing_lost(dovecot, msgs)
    assert_one_reply_each(smtp)
    assert "imap_error" not in [e["event"] for e in evs]
    assert len(proxy.started) == 1


@pytest.mark.parametrize("how", ["bye", "drop"])
def test_server_ends_idle_then_reconnect(tmp_path, plain_dovecot, smtp, ca, how):
    """The server ends the session during IDLE (`* BYE`, as after Exchange's or Dovecot's
    IDLE limit; plaintext, so the proxy can write it) or the TLS connection just drops:
    reconnect, keep the checkpoint, no spin."""
    plain = how == "bye"
    proxy = FaultProxy(plain_dovecot.imap_port if plain else plain_dovecot.imaps_port).start()
    try:
        env = proxied_env(tmp_path, plain_dovecot, smtp.port, ca, proxy, plain=plain)
        proc = env.start()
        try:
            plain_dovecot.append(referral(message_id="<ok@aalborg.dk>"))
            assert len(smtp.wait_for(1, timeout=60)) == 1
            time.sleep(1.0)  # idling again
            t_cut = time.monotonic()
            if how == "bye":
                proxy.inject_now(b"* BYE Session limit reached, please reconnect\r\n", close=True)
            else:
                proxy.inject_now(b"", close=True)
            time.sleep(1.0)
            plain_dovecot.append(referral(message_id="<sub@rebild.dk>", from_="Team <team@jobcenter.rebild.dk>"))
            assert len(smtp.wait_for(2, timeout=60)) == 2
            time.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    finally:
        proxy.stop()
    names = [e["event"] for e in events(out)]
    assert names.count("imap_error") == 1, names
    assert names.count("imap_connected") == 2
    assert len(proxy.started) == 2  # no spin
    # noticed at once (not after timeout_seconds = 10 of silence), reconnected after the backoff
    assert proxy.started[1] - t_cut < 5
    ids = Counter(r["message"]["In-Reply-To"] for r in smtp.messages)
    assert ids == Counter({"<ok@aalborg.dk>": 1, "<sub@rebild.dk>": 1})
    assert place(plain_dovecot.folder_messages())["INBOX"] == []


@pytest.mark.parametrize("command,answer", [
    (rb"^\S+ LOGIN ", b"NO [UNAVAILABLE] Server Unavailable. 15"),
    (rb"^\S+ SELECT ", b"NO [UNAVAILABLE] Server Unavailable. 15"),
    (rb"^\S+ UID FETCH .*BODY\.PEEK\[\]", b"NO [THROTTLED] Request is throttled. Suggested Backoff Time: 1000 milliseconds"),
])
def test_throttling_answers_back_off_and_log_once(tmp_path, plain_dovecot, smtp, ca, command, answer):
    proxy = FaultProxy(plain_dovecot.imap_port).start()
    proxy.default = Fault("refuse", match=command, line=answer, times=3)
    try:
        env = proxied_env(tmp_path, plain_dovecot, smtp.port, ca, proxy, plain=True)
        msgs = append_all(plain_dovecot)
        evs = run_until(env, inbox_empty_and_answered(plain_dovecot, smtp))
    finally:
        proxy.stop()
    assert proxy.refused == 3
    assert_nothing_lost(plain_dovecot, msgs)
    assert_one_reply_each(smtp)
    errors = [e for e in evs if e["event"] == "imap_error"]
    assert len(errors) == 1 and errors[0]["throttled"] is True, errors
    assert not [e for e in evs if e["event"] == "imap_auth_failed"]  # not "wrong password"
    recovered = [e for e in evs if e["event"] == "imap_recovered"]
    assert len(recovered) == 1 and recovered[0]["attempts"] == 3 and recovered[0]["throttled"]
    # 4 x initial at least, doubling, capped at reconnect_max_seconds: no spin
    assert len(proxy.started) == 4
    gaps = [b - a for a, b in zip(proxy.started, proxy.started[1:])]
    assert gaps[0] >= 0.75 and gaps[1] >= 1.5 and gaps[2] >= 1.9 and max(gaps) < 4, gaps


@pytest.mark.parametrize("fault", [Fault("reset", after=200), Fault("stall", after=200)])
def test_broken_smtp_connection_answers_once(tmp_path, dovecot, ca, fault):
    """The outbox's first SMTP connection breaks before the mail is handed over: retried on a
    new one, and every reply reaches the sink exactly once."""
    sink = SmtpSink(ca).start()
    proxy = FaultProxy(sink.port).start()
    proxy.plan[1] = fault
    try:
        env = Env(tmp_path, dovecot, proxy.port, ca, extra=FAST)
        env.config.write_text(env.config.read_text().replace("timeout_seconds = 5", "timeout_seconds = 2"))
        msgs = append_all(dovecot)
        evs = run_until(env, inbox_empty_and_answered(dovecot, sink))
    finally:
        proxy.stop()
        sink.stop()
    assert_nothing_lost(dovecot, msgs)
    assert_one_reply_each(sink)
    names = [e["event"] for e in evs]
    assert names.count("smtp_unavailable") == 1, names  # broken while connecting: once
    assert len(proxy.started) >= 2


def test_smtp_answer_lost_after_the_data_is_not_resent(tmp_path, dovecot, ca):
    """The sink has the reply, the connection breaks before its `250` arrives: the outbox
    cannot know it was delivered. It must not send it again (a double reply); it marks it
    uncertain for a person to check, and logs that once."""
    sink = SmtpSink(ca).start()
    proxy = FaultProxy(sink.port).start()
    proxy.plan[1] = Fault("cut_reply", after=1000)
    try:
        env = Env(tmp_path, dovecot, proxy.port, ca, extra=FAST)
        env.config.write_text(env.config.read_text().replace("timeout_seconds = 5", "timeout_seconds = 2"))
        msgs = append_all(dovecot)
        evs = run_until(env, inbox_empty_and_answered(dovecot, sink, 5), timeout=20)
    finally:
        proxy.stop()
        sink.stop()
    assert_nothing_lost(dovecot, msgs)
    ids = Counter(r["message"]["In-Reply-To"] for r in sink.messages)
    assert all(n == 1 for n in ids.values()), ids
    uncertain = [e for e in evs if e["event"] == "reply_uncertain"]
    assert len(uncertain) == 1, [e["event"] for e in evs]
    assert len(ids) == 5  # the uncertain one reached the sink once; the rest went on a new connection
