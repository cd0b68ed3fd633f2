"""Benchmark the decision core.

1. Throughput: triage of N generated referrals (mixed: plain, HTML tables, attachments, redirects,
   machine mail) against a bare `email.message_from_bytes(policy=default)` + `walk()` of the same
   bytes. Target: triage <= 3x the bare parse per message.
2. Peak RSS of one triage of a message with a 60 MB attachment, in a fresh process.
   Target: <= 300 MB.

usage: python bench/bench_triage.py [--n 2000] [--mb 60]
"""

from __future__ import annotations

import argparse
import base64
import email
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from email import policy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intake.config import Settings  # noqa: E402
from intake.core.rules import load_rules  # noqa: E402
from intake.core.triage import triage  # noqa: E402
from intake.edges.worker import TriageWorker  # noqa: E402
from tests.corpus.corpus import load as load_corpus  # noqa: E402
from tests.mailfactory import BODY, PDF, referral  # noqa: E402

HTML = """<html><body><p>Henvisning til <b>psykiatrisk speciallægeerklæring</b>.</p><table>
<tr><td>Borgers navn</td><td>{name}</td></tr><tr><td>CPR-nummer</td><td>{cpr}</td></tr>
<tr><td>Problemstilling</td><td>Det ønskes belyst, om borgeren har en varig lidelse.</td></tr></table></body></html>"""
NAMES = ["Karen Lund", "Jens Peter Hansen", "Åse Nørby", "Mads Kristian Poulsen", "Fatima Yilmaz"]


DOMAINS = ["aalborg.dk", "bronderslev.dk", "frederikshavn.dk", "hjoerring.dk", "jammerbugt.dk", "laesoe.dk",
           "mariagerfjord.dk", "mors.dk", "rebild.dk", "thisted.dk", "vesthimmerland.dk"]


def corpus(n: int, seed: int = 7) -> list[bytes]:
    """Mixed referrals from many caseworkers (a few each, under the per-recipient reply limit)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        sender = f"Sagsbehandler {i % 400} <sb{i % 400}@{DOMAINS[i % len(DOMAINS)]}>"
        name = rnd.choice(NAMES)
        cpr = f"{rnd.randint(1, 28):02d}{rnd.randint(1, 12):02d}{rnd.randint(40, 99):02d}-{rnd.randint(0, 3)}{rnd.randint(0, 999):03d}"
        kind = i % 5
        atts = [(f"Akt_{k}.pdf", PDF * rnd.randint(1, 40), "application/pdf") for k in range(rnd.randint(0, 4))]
        if kind == 0:
            out.append(referral(BODY.replace("Karen Lund", name).replace("120385-1233", cpr), attachments=atts,
                                from_=sender))
        elif kind == 1:
            out.append(referral("", html=HTML.format(name=name, cpr=cpr), subject="Henvisning", attachments=atts,
                                from_=sender))
        elif kind == 2:
            out.append(referral(BODY.replace("Sociale og lægelige akter er vedhæftet.",
                                             "Borgeren er i ressourceforløb."), attachments=atts, from_=sender))
        elif kind == 3:
            out.append(referral(BODY, headers={"Auto-Submitted": "auto-replied"}, attachments=[], from_=sender))
        else:
            out.append(referral(BODY.replace("120385-1233", "ikke oplyst"), from_="x@gmail.com", attachments=atts))
    return out


def bare(raw: bytes) -> None:
    m = email.message_from_bytes(raw, policy=policy.default)
    for _ in m.walk():
        pass


def throughput(n: int) -> None:
    msgs = corpus(n)
    settings = Settings()
    rules = load_rules()
    triage(msgs[0], settings, rules)  # warm caches (templates, rules)
    t0 = time.perf_counter()
    for raw in msgs:
        bare(raw)
    t_bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    decisions: dict[str, int] = {}
    for raw in msgs:
        r, _ = triage(raw, settings, rules)
        decisions[r.decision] = decisions.get(r.decision, 0) + 1
    t_triage = time.perf_counter() - t0
    size = sum(len(m) for m in msgs) / len(msgs)
    print(f"messages: {n} (mean {size / 1024:.1f} KiB) decisions: {decisions}")
    print(f"bare parse+walk: {t_bare:.2f} s  {n / t_bare:,.0f} msg/s  {t_bare / n * 1e6:,.0f} us/msg")
    print(f"triage:          {t_triage:.2f} s  {n / t_triage:,.0f} msg/s  {t_triage / n * 1e6:,.0f} us/msg")
    print(f"ratio triage/bare: {t_triage / t_bare:.2f}x  (target <= 3x)")
    with TriageWorker(settings) as w:  # what the daemon and `intake triage` do: a limited child process
        w.triage(msgs[0])
        t0 = time.perf_counter()
        for raw in msgs:
            w.triage(raw)
        t_worker = time.perf_counter() - t0
    print(f"triage in the worker process: {t_worker:.2f} s  {t_worker / n * 1e6:,.0f} us/msg  "
          f"ratio to bare: {t_worker / t_bare:.2f}x  (target <= 3x)")
    mixed = [c.raw for c in load_corpus()]
    t0 = time.perf_counter()
    for raw in mixed:
        bare(raw)
    t_bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    for raw in mixed:
        triage(raw, settings, rules)
    t_mixed = time.perf_counter() - t0
    print(f"tests/corpus ({len(mixed)} messages, forms included): bare {t_bare / len(mixed) * 1e3:.1f} ms/msg, "
          f"triage {t_mixed / len(mixed) * 1e3:.1f} ms/msg, ratio {t_mixed / t_bare:.2f}x")


def big_message(mb: int) -> bytes:
    """A referral with one `mb` MB attachment, built without holding extra copies."""
    small = referral(attachments=[("Journal_stor.pdf", b"@@BIG@@", "application/pdf")])
    head, _, tail = small.partition(base64.b64encode(b"@@BIG@@"))
    chunk = os.urandom(57 * 1024)  # 57 bytes of data per 76-character base64 line
    encoded = base64.encodebytes(chunk)
    reps = mb * 1024 * 1024 // len(chunk)
    return b"".join([head, encoded * reps, tail])


def big_child(path: str) -> None:
    raw = Path(path).read_bytes()
    mb = len(raw) * 3 // 4 // 1024 // 1024
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    r, _ = triage(raw, Settings())
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = r.attachments[0].size if r.attachments else 0
    print(f"{mb} MB attachment ({len(raw) / 1e6:.0f} MB raw, {size / 1e6:.0f} MB decoded): decision "
          f"{r.decision}, {dt:.2f} s, peak RSS {peak / 1024:.0f} MB "
          f"(process before triage {base / 1024:.0f} MB; target <= 300 MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--mb", type=int, default=60)
    ap.add_argument("--big-child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.big_child:
        big_child(a.big_child)
        return
    throughput(a.n)
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(big_message(a.mb))
        f.flush()
        subprocess.run([sys.executable, __file__, "--big-child", f.name], check=True)


if __name__ == "__main__":
    main()
