"""systemd: the unit (systemd-analyze security and verify), and sd_notify from the real daemon on a
real AF_UNIX datagram socket: READY only once the mailbox is selected, STATUS lines, WATCHDOG
pings during IDLE that stop when the worker hangs, STOPPING at shutdown."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from intake.service.sdnotify import Notifier
from tests.conftest import ROOT, Env
from tests.mailfactory import referral

UNIT = ROOT / "systemd" / "intake.service"
EXAMPLE = ROOT / "config" / "intake.example.toml"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
FAST = "[health]\ninterval_seconds = 1\n"  # the STATUS line's outbox count, refreshed every second


# --- the unit ------------------------------------------------------------------------------------
def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


@needs_analyze
def test_unit_exposure_is_at_most_1_5():
    p = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for intake\.service: (\d+(?:\.\d+)?) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 1.5, p.stdout


@needs_analyze
def test_unit_verifies_without_warnings(tmp_path):
    # verify wants the executables to exist: the same unit with ExecStart*= pointing at one that does
    exe = shutil.which("true")
    text = UNIT.read_text().replace("/opt/sme-intake/.venv/bin/intake", exe)
    assert text.count(exe) == 2
    unit = tmp_path / "intake.service"
    unit.write_text(text)
    p = subprocess.run([ANALYZE, "verify", "--no-pager", str(unit)], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "intake.service" in ln]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr


def test_unit_is_notify_with_watchdog_credentials_and_check_config():
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["120s"]
    assert s["ExecStartPre"] == ["/opt/sme-intake/.venv/bin/intake check-config --config /etc/intake/intake.toml"]
    assert s["DynamicUser"] == ["yes"] and s["StateDirectory"] == ["intake"]
    # every credential the example config names is loaded, from the credential store (a missing
    # optional one is then skipped rather than failing the start)
    loaded = dict(c.split(":", 1) for c in s["LoadCredential"])
    named = set(re.findall(r"/run/credentials/intake\.service/([\w.-]+)", EXAMPLE.read_text()))
    assert named and named <= set(loaded), named - set(loaded)
    assert {"gpg-passphrase", "hmac-key", "imap-password"} <= set(loaded)
    assert all(v == f"intake.{k}" for k, v in loaded.items())
    # the triage worker's setrlimit stays allowed after ~@resources
    assert s["SystemCallFilter"] == ["@system-service", "~@privileged @resources", "setrlimit"]
    # the resource-limit reasoning is kept
    text = UNIT.read_text()
    assert "MemoryMax=1536M" in text and "TasksMax=64" in text and "350 + 2 x 512" in text


# --- sd_notify -----------------------------------------------------------------------------------
class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd: records every notification."""

    def __init__(self, path: Path | str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path) if not str(path).startswith("@") else "\0" + str(path)[1:])
        self.sock.settimeout(0.2)
        self.address = str(path)
        self.got: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, OSError):
                continue
            fields = dict(ln.split("=", 1) for ln in data.decode().splitlines() if "=" in ln)
            self.got.append((time.monotonic(), fields))

    def wait_for(self, pred, timeout: float = 30.0) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for item in self.got[seen:]:
                if pred(item[1]):
                    return item
            time.sleep(0.05)
        raise AssertionError(f"no such notification in {timeout} s; got {[f for _, f in self.got]}")

    def key(self, name: str) -> list[tuple[float, str]]:
        return [(t, f[name]) for t, f in list(self.got) if name in f]

    def statuses(self) -> list[str]:
        return [v for _, v in self.key("STATUS")]

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def daemon_env(sock: NotifySocket, watchdog_usec: int = 2_000_000, **extra: str) -> dict:
    return {"NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": str(watchdog_usec), **extra}


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)


def test_notifier_without_socket_does_nothing_and_takes_the_variables_out_of_the_environment():
    env = {"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    n = Notifier.from_environment(env)
    assert env == {}  # children (workers, gpg) never see them
    assert n.watchdog_interval is None  # the watchdog was meant for pid 1, not us
    assert n.send("READY=1") is False  # the socket is not there: no error either
    quiet = Notifier.from_environment({})
    assert not quiet.enabled and quiet.send("READY=1") is False
    quiet.ready("x")
    quiet.watchdog()
    quiet.stopping()


def test_notifier_abstract_socket_and_watchdog_rate():
    name = f"@intake-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = NotifySocket(name)
    try:
        n = Notifier.from_environment({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000",
                                       "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_interval == pytest.approx(0.1)
        n.ready("idle")
        n.status("idle")  # the same text is not sent again
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            n.watchdog()  # called often: sent at most every WATCHDOG_USEC/4
            time.sleep(0.01)
        n.stopping("bye")
        sock.wait_for(lambda f: f.get("STOPPING") == "1", 5)
        assert sock.got[0][1] == {"READY": "1", "STATUS": "idle"}
        assert sock.statuses() == ["idle", "bye"]
        pings = [t for t, _ in sock.key("WATCHDOG")]
        assert 8 <= len(pings) <= 11, pings
    finally:
        sock.close()


def test_ready_only_after_the_mailbox_is_selected(tmp_path, dovecot, smtp, ca, notify_socket):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra="[daemon]\nreconnect_max_seconds = 1\n" + FAST)
    dovecot.stop()  # the store opens, the mailbox cannot be reached
    proc = env.start(daemon_env(notify_socket))
    try:
        notify_socket.wait_for(lambda f: f.get("STATUS", "").startswith("IMAP reconnecting: "), 30)
        time.sleep(2.0)
        assert not notify_socket.key("READY")
        assert notify_socket.key("WATCHDOG")  # the back-off loop is alive and says so
        status = notify_socket.statuses()[-1]
        assert re.fullmatch(r"IMAP reconnecting: \w+ \(retry in \d+ s\); last sync never", status), status
        dovecot.start()  # same ports
        _t, fields = notify_socket.wait_for(lambda f: f.get("READY") == "1", 30)
        assert fields["STATUS"].startswith("idle, 0 waiting, last sync ")
        # and the error stays in view after the recovery
        notify_socket.wait_for(lambda f: re.fullmatch(r"idle, 0 waiting, last sync \d\d:\d\d:\d\d; "
                                                       r"last error \d\d:\d\d:\d\d IMAP \w+",
                                                       f.get("STATUS", "")) is not None, 10)
    finally:
        out, _err = stop(proc)
    lines = out.splitlines()
    connected = next(i for i, ln in enumerate(lines) if '"imap_connected"' in ln)
    assert any('"imap_error"' in ln for ln in lines[:connected])
    assert len(notify_socket.key("READY")) == 1


def test_watchdog_pings_while_idle_and_stop_when_the_worker_hangs(tmp_path, dovecot, smtp, ca, notify_socket):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=FAST)  # IDLE, idle_renew_seconds = 25 min
    proc = env.start(daemon_env(notify_socket, 3_000_000, INTAKE_FAILPOINTS="before_commit:1:hang"))
    try:
        notify_socket.wait_for(lambda f: f.get("READY") == "1", 30)
        time.sleep(6.0)  # inside one long IDLE: the wait loop itself pings, every ~1 s (its tick; USEC/4 = 0.75 s)
        t_ready = notify_socket.key("READY")[0][0]
        pings = [t for t, _ in notify_socket.key("WATCHDOG") if t > t_ready]
        assert len(pings) >= 3, pings
        assert max(b - a for a, b in zip(pings, pings[1:])) < 3.0  # never the full WATCHDOG_USEC
        dovecot.append(referral(message_id="<hang@aalborg.dk>"))
        notify_socket.wait_for(lambda f: f.get("STATUS", "").startswith("draining 1 message,"), 20)
        time.sleep(6.0)  # triaged (the worker's cold start included), then stuck at before_commit
        t_stuck = time.monotonic() - 3.0
        time.sleep(4.0)
        assert proc.poll() is None  # alive, but silent for 7 s > WATCHDOG_USEC (3 s): systemd would restart it
        assert [t for t, _ in notify_socket.key("WATCHDOG") if t > t_stuck] == []
        assert not any(s.startswith("idle") for _, s in notify_socket.key("STATUS") if _ > t_stuck)
        proc.send_signal(signal.SIGABRT)  # what systemd sends when WatchdogSec= runs out
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGABRT
        # the journal then shows where every thread was: the worker stuck in the batch
        assert "Fatal Python error: Aborted" in err
        assert re.search(r'File ".*failpoints\.py", line \d+ in hit\n.*File ".*daemon\.py", line \d+ in handle_batch',
                         err, re.S), err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_status_lines_and_stopping(tmp_path, dovecot, smtp, ca, notify_socket):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=FAST)
    for i in range(3):
        dovecot.append(referral(message_id=f"<s{i}@aalborg.dk>"))
    proc = env.start(daemon_env(notify_socket))
    try:
        notify_socket.wait_for(lambda f: f.get("READY") == "1", 30)
        notify_socket.wait_for(lambda f: re.fullmatch(r"idle, 0 waiting, last sync \d\d:\d\d:\d\d",
                                                       f.get("STATUS", "")) is not None, 30)
        assert len(smtp.wait_for(3, timeout=20)) == 3
    finally:
        out, _err = stop(proc)
    assert proc.returncode == 0
    statuses = notify_socket.statuses()
    assert "draining 3 messages, 0 waiting" in statuses, statuses
    t_stop, fields = notify_socket.wait_for(lambda f: f.get("STOPPING") == "1", 5)
    assert fields["STATUS"].startswith("stopping")
    for text in statuses:  # nothing personal in the STATUS lines
        assert "1203851233" not in text and "aalborg" not in text and "Karen" not in text
