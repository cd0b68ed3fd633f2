"""Soak: the daemon against a real Dovecot and SMTP sink for N minutes, with mail arriving all
the time, SIGKILLs of the daemon at random moments (it is restarted at once) and one IMAP
server restart (Dovecot stopped and started on the same ports) half-way.

Measures and prints:
- the daemon's RSS over time, per restart epoch (first, last, max; its triage workers too);
- lost messages: every appended message (tagged X-Soak-Id) must end in exactly one triage
  folder, none left in INBOX, none in two places;
- double replies: replies per incoming Message-ID at the SMTP sink (In-Reply-To), at most one;
- `intake health --json` at the end against the store: outbox states the same as the store's,
  replies sent the same as the sink received, the last epoch's message counters against the
  store's messages of that epoch.

usage: python bench/bench_soak.py [--minutes 30] [--rate 2.0] [--kill-min 20] [--kill-max 90] [--seed 11]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intake.edges.devservers import Dovecot, SmtpSink, TestCA, write_config  # noqa: E402
from tests.corpus.corpus import load as load_corpus  # noqa: E402

TRIAGE_FOLDERS = ("Triage/Klar", "Triage/Mangler", "Triage/Mediconnect", "Triage/Manuel", "Triage/Ignoreret")
_MSGID = re.compile(rb"(?im)^message-id:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n")


def tagged(raw: bytes, n: int) -> tuple[bytes, str]:
    """The corpus message with our own Message-ID and an X-Soak-Id first (unique bytes, unique ID)."""
    msgid = f"<soak-{n}@aalborg.dk>"
    body = _MSGID.sub(b"", raw, count=5)
    return f"X-Soak-Id: {n}\r\nMessage-ID: {msgid}\r\n".encode() + body, msgid


class Feeder(threading.Thread):
    """APPENDs corpus messages to INBOX at `rate` per second; pauses while `gate` is held (the
    IMAP restart), so that no APPEND is in flight when the server goes away."""

    def __init__(self, dovecot: Dovecot, corpus: list[bytes], rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.dovecot, self.corpus, self.rate = dovecot, corpus, rate
        self.rnd = random.Random(seed)
        self.gate = threading.Lock()
        self.stop = threading.Event()
        self.appended: dict[str, str] = {}  # soak id -> Message-ID
        self.errors = 0

    def run(self) -> None:
        client = None
        n = 0
        while not self.stop.is_set():
            raw, msgid = tagged(self.rnd.choice(self.corpus), n)
            with self.gate:
                try:
                    if client is None:
                        client = self.dovecot.client()
                    client.append("INBOX", raw)
                    self.appended[str(n)] = msgid
                    n += 1
                except Exception:  # noqa: BLE001 - the server went away: reconnect, try again
                    self.errors += 1
                    client = None
                    time.sleep(0.5)
                    continue
            self.stop.wait(self.rnd.expovariate(self.rate))
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001
                pass


def rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """(daemon RSS, daemon + children RSS) in MB."""
    try:
        own = proc.memory_info().rss
        kids = sum(c.memory_info().rss for c in proc.children(recursive=True))
    except psutil.Error:
        return 0.0, 0.0
    return own / 1e6, (own + kids) / 1e6


def store_rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def folder_ids(dovecot: Dovecot) -> dict[str, list[str]]:
    """Folder -> X-Soak-Id of each message in it."""
    out: dict[str, list[str]] = {}
    with dovecot.client() as c:
        for flags, _d, name in c.list_folders():
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            info = c.select_folder(name, readonly=True)
            ids: list[str] = []
            if info.get(b"EXISTS", 0):
                for _uid, d in c.fetch(c.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (X-SOAK-ID)]"]).items():
                    h = next((v for k, v in d.items() if k.startswith(b"BODY[HEADER")), b"") or b""
                    m = re.search(rb"X-Soak-Id:\s*(\d+)", h, re.I)
                    ids.append(m.group(1).decode() if m else "?")
            out[name] = ids
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=2.0, help="messages appended per second (mean)")
    ap.add_argument("--kill-min", type=float, default=20.0, help="seconds between SIGKILLs, at least")
    ap.add_argument("--kill-max", type=float, default=90.0, help="seconds between SIGKILLs, at most")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true", help="keep the working folder (logs, store)")
    a = ap.parse_args()
    rnd = random.Random(a.seed)

    corpus = [c.raw for c in load_corpus() if len(c.raw) < 200_000]
    base = Path(tempfile.mkdtemp(prefix="bench-soak-", dir="/tmp"))
    base.chmod(0o755)
    ca = TestCA(base / "tls")
    dovecot = Dovecot(base / "dovecot", ca).start()
    sink = SmtpSink(ca).start()
    cfg = write_config(base, dovecot, sink.port, ca, mailbox_extra="timeout_seconds = 10",
                       smtp_extra="timeout_seconds = 5",
                       extra="[outbox]\nretry_initial_seconds = 0.3\nretry_max_seconds = 2.0\n"
                             "[reply_limits]\nper_recipient_per_10_minutes = 1000000\nper_recipient_per_day = 1000000\n"
                             "[health]\ninterval_seconds = 1\n")
    db = base / "intake.db"
    env = {**os.environ, "INTAKE_LOG_LEVEL": "info"}
    epochs: list[dict] = []
    proc: subprocess.Popen | None = None
    feeder = Feeder(dovecot, corpus, a.rate, a.seed)

    def start_daemon() -> subprocess.Popen:
        log = open(base / f"daemon-{len(epochs)}.log", "wb")  # noqa: SIM115 - closed with the epoch
        p = subprocess.Popen([sys.executable, "-m", "intake", "run", "--config", str(cfg)],
                             stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        epochs.append({"pid": p.pid, "started": time.time(), "utc": dt.datetime.now(dt.timezone.utc),
                       "rss": [], "end": None, "log": log})
        return p

    t_start = time.time()
    t_end = t_start + a.minutes * 60
    imap_restart_at = t_start + a.minutes * 60 / 2
    imap_restarted = None
    kills = 0
    exit_codes: list[int] = []
    try:
        proc = start_daemon()
        feeder.start()
        next_kill = time.time() + rnd.uniform(a.kill_min, a.kill_max)
        while time.time() < t_end:
            ps = psutil.Process(proc.pid)
            epochs[-1]["rss"].append((time.time() - t_start, *rss_mb(ps)))
            if proc.poll() is not None:  # it ended by itself: note it, restart (as systemd would)
                exit_codes.append(proc.returncode)
                epochs[-1]["end"] = f"exit {proc.returncode}"
                time.sleep(1.0)
                proc = start_daemon()
            elif time.time() >= next_kill:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                kills += 1
                epochs[-1]["end"] = "SIGKILL"
                proc = start_daemon()
                next_kill = time.time() + rnd.uniform(a.kill_min, a.kill_max)
            elif imap_restarted is None and time.time() >= imap_restart_at:
                with feeder.gate:
                    dovecot.stop()
                    time.sleep(3.0)
                    dovecot.start()  # same ports, same mail
                imap_restarted = time.time() - t_start
            time.sleep(1.0)
        feeder.stop.set()
        feeder.join(30)
        # the last daemon drains what is left: INBOX empty, nothing waiting in the outbox
        drain_deadline = time.time() + 300
        while time.time() < drain_deadline:
            ps = psutil.Process(proc.pid)
            epochs[-1]["rss"].append((time.time() - t_start, *rss_mb(ps)))
            with dovecot.client() as c:
                inbox = c.select_folder("INBOX", readonly=True).get(b"EXISTS", 0)
            waiting = store_rows(db, "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','sending')")[0][0]
            if inbox == 0 and waiting == 0:
                break
            time.sleep(2.0)
        time.sleep(3.0)  # the status file is rewritten every second ([health] interval_seconds = 1)
        health = subprocess.run([sys.executable, "-m", "intake", "health", "--json", "--config", str(cfg)],
                                capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        epochs[-1]["end"] = f"SIGTERM (exit {proc.returncode})"
        wall = time.time() - t_start

        # --- the figures ---------------------------------------------------------------------
        folders = folder_ids(dovecot)
        where: dict[str, list[str]] = collections.defaultdict(list)
        for name, ids in folders.items():
            for i in ids:
                where[i].append(name)
        appended = feeder.appended
        lost = [i for i in appended if not where.get(i)]
        in_inbox = [i for i in appended if "INBOX" in where.get(i, [])]
        twice = [i for i in appended if len(where.get(i, [])) > 1]
        outside = [i for i in appended if any(f not in TRIAGE_FOLDERS for f in where.get(i, []))]
        per_folder = collections.Counter(f for i in appended for f in where.get(i, []))
        time.sleep(1.0)
        replies = list(sink.messages)
        by_msgid = collections.Counter(str(r["message"]["In-Reply-To"] or "-") for r in replies)
        doubles = {k: v for k, v in by_msgid.items() if v > 1}
        rows = dict(store_rows(db, "SELECT state, COUNT(*) FROM outbox GROUP BY state"))
        decided = dict(store_rows(db, "SELECT decision, COUNT(*) FROM messages GROUP BY decision"))

        print(f"soak: {a.minutes:g} min of mail ({wall / 60:.1f} min wall with the final drain), "
              f"{len(appended)} messages appended (mean {a.rate:g}/s, {feeder.errors} APPEND retries), "
              f"{kills} SIGKILLs of the daemon, {len(epochs)} daemon runs, "
              + (f"IMAP restart at {imap_restarted:.0f} s" if imap_restarted else "no IMAP restart"))
        if exit_codes:
            print(f"daemon exits by itself (restarted): {exit_codes}")
        print(f"lost: {len(lost)}; left in INBOX: {len(in_inbox)}; in two folders: {len(twice)}; "
              f"outside the triage folders: {len(outside)} (0 expected each)")
        print("filed: " + ", ".join(f"{k} {v}" for k, v in sorted(per_folder.items())))
        print(f"replies at the SMTP sink: {len(replies)} for {len(by_msgid)} incoming Message-IDs; "
              f"double replies: {sum(v - 1 for v in doubles.values())} (0 expected)")
        print(f"store: messages {sum(decided.values())} {decided}; outbox {rows}")
        owed = sum(decided.get(d, 0) for d in ("accepted", "incomplete", "redirect"))
        print(f"replies owed (accepted + incomplete + redirect): {owed}; sent {rows.get('sent', 0)}, left uncertain "
              f"by a SIGKILL during the SMTP send (at most once: never resent) {rows.get('uncertain', 0)}, "
              f"other {sum(v for k, v in rows.items() if k not in ('sent', 'uncertain'))}")
        print("daemon RSS per run (MB: first after 5 s / last / max; with its triage workers: max):")
        for k, e in enumerate(epochs):
            r = [x for x in e["rss"] if x[1] > 0]
            settled = [x for x in r if x[0] - r[0][0] >= 5] or r  # after its start-up (imports)
            if not r:
                print(f"  run {k}: no sample ({e['end']})")
                continue
            print(f"  run {k}: {r[0][0]:5.0f}-{r[-1][0]:5.0f} s  {settled[0][1]:5.0f} / {r[-1][1]:5.0f} / {max(x[1] for x in r):5.0f}"
                  f"   with workers {max(x[2] for x in r):5.0f}   ended by {e['end']}")
        longest = max(epochs, key=lambda e: len(e["rss"]))
        lr = [x for x in longest["rss"] if x[1] > 0]
        if len(lr) > 20:
            q = len(lr) // 4
            print(f"  longest run ({len(lr)} samples): first quarter max {max(x[1] for x in lr[:q]):.0f} MB, "
                  f"last quarter max {max(x[1] for x in lr[-q:]):.0f} MB")
        # health against the store and the sink
        try:
            h = json.loads(health.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            print(f"intake health: no JSON (exit {health.returncode}): {health.stderr.strip()[:300]}")
            h = None
        if h is not None:
            hstates = (h.get("outbox") or {}).get("states", {})
            counters = ((h.get("daemon") or {}).get("counters") or {})
            last = epochs[-1]["utc"].strftime("%Y-%m-%d %H:%M:%S")
            epoch_msgs = dict(store_rows(db, "SELECT decision, COUNT(*) FROM messages WHERE received_at >= "
                                             f"'{last}' GROUP BY decision"))
            sent_ok = hstates.get("sent", 0) == len(replies)
            print(f"intake health: ok={h.get('ok')} problems={h.get('problems')}")
            print(f"  outbox states, health {hstates} vs store {rows}: {'same' if hstates == rows else 'DIFFERENT'}; "
                  f"sent {hstates.get('sent', 0)} vs sink {len(replies)}: {'same' if sent_ok else 'DIFFERENT'}")
            print(f"  last run's counters: messages {counters.get('messages')} replies {counters.get('replies')}; "
                  f"store messages since that run started {epoch_msgs}")
        bad = len(lost) + len(in_inbox) + len(twice) + len(outside) + len(doubles)
        return 1 if bad else 0
    finally:
        feeder.stop.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for e in epochs:
            e["log"].close()
        sink.stop()
        dovecot.stop()
        if a.keep:
            print(f"working folder kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
