"""Benchmark the daemon against a real Dovecot and SMTP sink on this machine.

1. Latency: the daemon idles; N messages are APPENDed one at a time; time from the APPEND's
   completion to the reply arriving at the SMTP server. Target p95 <= 1 s.
2. Drain: M mixed referrals waiting in the inbox, `intake run --once`; messages per second
   (target >= 100 msg/s on 2 cores), against a bare imapclient FETCH of the same messages
   (ratio, target <= 3x), and the daemon's RSS sampled over the drain (flat).

usage: python bench/bench_daemon.py [--latency 40] [--drain 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_triage import corpus  # noqa: E402
from intake.edges.devservers import Dovecot, SmtpSink, TestCA, write_config  # noqa: E402
from tests.mailfactory import referral  # noqa: E402


@contextmanager
def servers(prefix: str):
    """A private Dovecot and SMTP sink in a throwaway folder: (base, ca, dovecot, sink)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    ca = TestCA(base / "tls")
    dovecot = Dovecot(base / "dovecot", ca).start()
    sink = SmtpSink(ca).start()
    try:
        yield base, ca, dovecot, sink
    finally:
        sink.stop()
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def latency(n: int) -> None:
    with servers("bench-lat-") as (base, ca, dovecot, sink):
        _latency(n, base, ca, dovecot, sink)


def _latency(n: int, base: Path, ca: TestCA, dovecot: Dovecot, sink: SmtpSink) -> None:
    proc = None
    try:
        cfg = write_config(base, dovecot, sink.port, ca)
        proc = subprocess.Popen([sys.executable, "-m", "intake", "run", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(2.0)
        lat = []
        with dovecot.client() as c:
            for i in range(n):
                raw = referral(message_id=f"<lat{i}@aalborg.dk>", from_=f"sb{i}@aalborg.dk")
                c.append("INBOX", raw)
                t0 = time.time()
                got = sink.wait_for(i + 1, timeout=30)
                if len(got) < i + 1:
                    raise SystemExit(f"reply {i} did not arrive")
                lat.append(got[i]["received_at"] - t0)
                time.sleep(0.2)
        lat.sort()
        p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
        print(f"latency APPEND -> reply at SMTP, {n} messages while idling: "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms "
              f"(target p95 <= 1000 ms)")
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def drain(m: int) -> None:
    with servers("bench-drain-") as (base, ca, dovecot, sink):
        msgs = corpus(m, seed=11)
        with dovecot.client() as c:
            for raw in msgs:
                c.append("INBOX", raw)
        # bare imapclient FETCH of the same messages (bodies, one at a time, like the daemon)
        with dovecot.client() as c:
            c.select_folder("INBOX", readonly=True)
            t0 = time.perf_counter()
            uids = c.search("ALL")
            for uid in uids:
                c.fetch([uid], ["BODY.PEEK[]"])
            t_bare = time.perf_counter() - t0
        cfg = write_config(base, dovecot, sink.port, ca)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "intake", "run", "--once", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        ps = psutil.Process(proc.pid)
        rss = []
        while proc.poll() is None:
            try:
                rss.append(ps.memory_info().rss / 1e6)
            except psutil.Error:
                break
            time.sleep(0.2)
        t_drain = time.perf_counter() - t0
        replies = len(sink.wait_for(m * 3 // 5, timeout=10))
        print(f"drain of {m} mixed referrals with --once: {t_drain:.1f} s, {m / t_drain:.0f} msg/s "
              f"(target >= 100 msg/s); replies sent: {replies}; exit {proc.returncode}")
        print(f"bare imapclient FETCH of the same {m} messages: {t_bare:.1f} s, {m / t_bare:.0f} msg/s; "
              f"ratio daemon/bare {t_drain / t_bare:.1f}x (target <= 3x)")
        if rss:
            q = len(rss) // 4 or 1
            print(f"daemon RSS over the drain: start {rss[0]:.0f} MB, first quarter max {max(rss[:q]):.0f} MB, "
                  f"last quarter max {max(rss[-q:]):.0f} MB, peak {max(rss):.0f} MB ({len(rss)} samples)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=int, default=40)
    ap.add_argument("--drain", type=int, default=2000)
    a = ap.parse_args()
    if a.latency:
        latency(a.latency)
    if a.drain:
        drain(a.drain)


if __name__ == "__main__":
    os.environ.setdefault("INTAKE_LOG_LEVEL", "warning")
    main()
