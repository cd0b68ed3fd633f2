"""`intake health` and the Prometheus metrics, from another process, against the running daemon
with a real Dovecot and SMTP sink: healthy and counting what the store holds; unhealthy (and why)
when the mailbox is gone too long, when a reply is uncertain, when the daemon is not running."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from intake.edges.devservers import free_port
from tests.conftest import ROOT, Env
from tests.mailfactory import referral
from tests.test_daemon import corpus

FAST = "[health]\ninterval_seconds = 1\n[daemon]\nreconnect_max_seconds = 1\n"


def health(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", "health", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def wait_health(config: Path, rc: int, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + timeout
    while True:
        p = health(config, *args)
        if p.returncode == rc or time.monotonic() > deadline:
            return p
        time.sleep(0.5)


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value}, samples only."""
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(samples: dict[tuple, float], label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in samples.items():
        k = dict(labels)[label]
        out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def store_counts(db: Path) -> tuple[dict[str, int], dict[str, int]]:
    con = sqlite3.connect(db)
    try:
        messages = dict(con.execute("SELECT decision, COUNT(*) FROM messages GROUP BY decision").fetchall())
        outbox = dict(con.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
    finally:
        con.close()
    return messages, outbox


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=60)
    return out


def test_healthy_daemon_and_metrics_equal_the_store(tmp_path, dovecot, smtp, ca):
    port = free_port()
    textfile = tmp_path / "intake.prom"
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=FAST + f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
              f'textfile = "{textfile}"\ntextfile_interval_seconds = 1\n')
    msgs = corpus()
    for raw, _ in msgs.values():
        dovecot.append(raw)
    proc = env.start()
    try:
        assert len(smtp.wait_for(4, timeout=60)) == 4
        p = wait_health(env.config, 0)
        assert p.returncode == 0, p.stdout + p.stderr
        lines = p.stdout.splitlines()
        assert lines[0] == "intake: healthy"
        assert any(ln.strip().startswith("imap: connected, last sync ") for ln in lines), p.stdout
        assert any("outbox: 0 waiting, 4 sent, 0 uncertain, 0 failed" in ln for ln in lines), p.stdout
        j = json.loads(health(env.config, "--json").stdout)
        assert j["ok"] is True and j["problems"] == [] and j["daemon"]["pid"] == proc.pid
        assert j["outbox"]["states"] == {"sent": 4}

        messages, outbox = store_counts(env.db)
        assert sum(messages.values()) == len(msgs)
        m = parse(scrape(port))
        assert by(m["intake_messages_total"], "decision") == messages
        assert by(m["intake_replies_total"], "outcome") == {"sent": outbox["sent"]}
        assert by(m["intake_replies_total"], "kind") == {"acknowledgement": 2, "missing_items": 1, "redirect": 1}
        assert {dict(k)["state"]: v for k, v in m["intake_outbox_entries"].items() if v} == outbox
        assert m["intake_outbox_oldest_pending_age_seconds"][()] == 0
        assert m["intake_imap_connected"][()] == 1
        assert time.time() - m["intake_last_sync_timestamp_seconds"][()] < 60
        assert m["intake_triage_seconds_count"][()] == len(msgs)
        assert by(m["intake_auth_failures_total"], "protocol") == {}
        assert set(dict(k)["protocol"] for k in m["intake_auth_failures_total"]) == {"imap", "smtp"}

        deadline = time.monotonic() + 10  # the textfile catches up within its interval
        while True:
            t = parse(textfile.read_text())
            if by(t["intake_messages_total"], "decision") == messages and \
                    by(t["intake_replies_total"], "outcome") == {"sent": 4} or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert by(t["intake_messages_total"], "decision") == messages
        assert {dict(k)["state"]: v for k, v in t["intake_outbox_entries"].items() if v} == outbox
        assert oct(textfile.stat().st_mode & 0o777) == "0o644"  # node_exporter may read it
        assert not list(tmp_path.glob(".intake.prom.*"))  # no temporary files left over
        exposed = scrape(port) + textfile.read_text() + p.stdout + (tmp_path / "health.json").read_text()
        for secret in ("1203851233", "120385-1233", "Karen Lund", "aalborg.dk", "Henvisning"):
            assert secret not in exposed
    finally:
        stop(proc)
    p = health(env.config)
    assert p.returncode == 1
    assert "problem: daemon not running (stopped " in p.stdout
    with pytest.raises(OSError):  # the endpoint went with the daemon
        scrape(port)


def test_mailbox_gone_longer_than_the_limit_is_unhealthy_and_says_why(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=FAST)  # IMAP timeout 10 s: quiet IDLE syncs that often
    limit = "0.4"  # minutes
    proc = env.start()
    try:
        p = wait_health(env.config, 0, "--max-sync-age-minutes", limit)
        assert p.returncode == 0, p.stdout
        dovecot.stop()
        t0 = time.monotonic()
        p = health(env.config, "--max-sync-age-minutes", limit)
        assert p.returncode == 0, p.stdout  # not yet: within the limit
        p = wait_health(env.config, 1, "--max-sync-age-minutes", limit, timeout=60)
        assert p.returncode == 1, p.stdout
        assert time.monotonic() - t0 > 10
        problems = [ln for ln in p.stdout.splitlines() if "problem:" in ln]
        assert len(problems) == 1, p.stdout
        assert "no successful sync for " in problems[0] and "IMAP not connected" in problems[0], p.stdout
        assert "IMAP ConnectionRefusedError" in problems[0], p.stdout
        st = json.loads((tmp_path / "health.json").read_text())
        assert st["imap_connected"] is False and st["running"] is True and st["pid"] == proc.pid
        dovecot.start()  # back: healthy again
        p = wait_health(env.config, 0, "--max-sync-age-minutes", limit, timeout=60)
        assert p.returncode == 0, p.stdout
    finally:
        stop(proc)


def test_an_uncertain_reply_is_unhealthy(tmp_path, dovecot, smtp, ca):
    port = free_port()
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=FAST + f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    dovecot.append(referral(message_id="<u@aalborg.dk>"))
    p = env.run_once({"INTAKE_FAILPOINTS": "before_smtp_send"})  # killed mid-delivery
    assert p.returncode == -signal.SIGKILL
    proc = env.start()  # finds it in 'sending': marks it uncertain, never resends it
    try:
        p = wait_health(env.config, 1, timeout=30)
        deadline = time.monotonic() + 20
        while "daemon not running" in p.stdout and time.monotonic() < deadline:
            time.sleep(0.5)
            p = health(env.config)
        problems = [ln for ln in p.stdout.splitlines() if "problem:" in ln]
        assert problems == ["  problem: 1 reply uncertain (maybe sent, maybe not): a person must settle it "
                            "(intake outbox list)"], p.stdout
        m = parse(scrape(port))
        assert by(m["intake_replies_total"], "outcome") == {"uncertain": 1}
        assert m["intake_outbox_entries"][(("state", "uncertain"),)] == 1
    finally:
        stop(proc)
    assert smtp.messages == []


def test_no_daemon_ever_started(tmp_path):
    config = tmp_path / "intake.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n')
    p = health(config)
    assert p.returncode == 1
    assert f"problem: daemon not running (no status file {tmp_path / 'health.json'})" in p.stdout
    assert "problem: cannot read the store: FileNotFoundError" in p.stdout  # and nothing was created
    assert not (tmp_path / "intake.db").exists()


def test_status_file_of_a_dead_daemon(tmp_path):
    """A daemon killed without a word (SIGKILL, the OOM killer): its pid is gone."""
    from intake.edges.store import Store

    config = tmp_path / "intake.toml"
    status = tmp_path / "elsewhere.json"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n'
                      f'[health]\nstatus_file = "{status}"\n')
    Store(f"sqlite:///{tmp_path / 'intake.db'}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    status.write_text(json.dumps({"pid": dead.pid, "started": now - 60, "updated": now, "running": True,
                                  "interval_seconds": 10, "imap_connected": True, "last_sync": now}))
    p = health(config)
    assert p.returncode == 1
    assert f"problem: daemon not running (pid {dead.pid} is gone" in p.stdout
    status.write_text(json.dumps({"pid": os.getpid(), "started": now - 600, "updated": now - 300,
                                  "running": True, "interval_seconds": 10, "imap_connected": True,
                                  "last_sync": now - 300}))
    p = health(config)  # a live pid that stopped writing: hung
    assert p.returncode == 1
    assert "problem: daemon not responding (status file not updated for 5 min)" in p.stdout


def test_the_example_config_documents_every_metrics_and_health_key(tmp_path):
    from intake.config import HealthConfig, MetricsConfig, load_settings

    text = (ROOT / "config" / "intake.example.toml").read_text()
    for section, model in (("metrics", MetricsConfig), ("health", HealthConfig)):
        block = text.split(f"# [{section}]", 1)[1].split("\n\n", 1)[0]
        keys = {ln[2:].split("=")[0].strip() for ln in block.splitlines() if re.match(r"# \w+ = ", ln)}
        assert keys == set(model.model_fields), (section, keys)
        # uncommented, the documented values are valid
        body = "\n".join(ln[2:].split("   #")[0].split("  #")[0] for ln in block.splitlines() if re.match(r"# \w+ = ", ln))
        f = tmp_path / f"{section}.toml"
        f.write_text(f"[{section}]\n{body}\n")
        s = load_settings(f)
        assert getattr(s, section).model_dump(exclude_unset=True)
    bad = tmp_path / "bad.toml"
    bad.write_text('[metrics]\nlisten = "9464"\n')
    with pytest.raises(Exception, match="host:port"):
        load_settings(bad)
