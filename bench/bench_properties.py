"""The triage's properties over many generated and mutated messages (tests/propmail.py).

Every message is triaged twice in this process (the worker's `worker = false` path) and must
hold every property: no exception (none caught inside as internal_error either), no CPR number
in a reply in any form, replies only to the sender at an allowed municipal domain, the same
decision, reason, missing list and reply the second time. Generation is hypothesis's (the
strategies of the tests), in chunks with a fixed seed each, without shrinking; a failing
message is written to --out for `intake triage --in-process` and counted, and the run goes on.

Prints: messages checked, rate, decisions (and manual reasons), replies, failures (0 expected),
wall time; with --max-minutes it stops early and extrapolates to --count.

usage: python bench/bench_properties.py [--count 100000] [--seed 2026] [--chunk 5000]
                                         [--max-minutes 0] [--out /tmp/property-failures]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests import propmail  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--chunk", type=int, default=5000, help="examples per hypothesis run (bounds its memory)")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long and extrapolate (0: no limit)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/property-failures"))
    a = ap.parse_args()

    strategy = propmail.messages(max_seed_bytes=400_000)
    decisions: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    failures: collections.Counter = collections.Counter()
    state = {"n": 0, "replies": 0, "bytes": 0, "slowest": 0.0, "failed": 0}
    t0, c0 = time.perf_counter(), time.process_time()
    deadline = t0 + a.max_minutes * 60 if a.max_minutes else None

    class Enough(Exception):
        pass

    def one(raw: bytes) -> None:
        if state["n"] >= a.count or (deadline and time.perf_counter() > deadline):
            raise Enough
        t = time.perf_counter()
        out = propmail.check(raw)
        state["slowest"] = max(state["slowest"], time.perf_counter() - t)
        state["n"] += 1
        state["bytes"] += len(raw)
        decisions[out.decision] += 1
        if out.decision in ("manual", "ignored"):
            reasons[f"{out.decision}/{out.reason}"] += 1
        state["replies"] += out.replied
        if out.failures:
            state["failed"] += 1
            for f in out.failures:
                failures[f.split(":")[0]] += 1
            a.out.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(raw).hexdigest()[:16]
            (a.out / f"{name}.eml").write_bytes(raw)
            (a.out / f"{name}.txt").write_text("\n".join(out.failures) + "\n")
        if state["n"] % 1000 == 0:
            el = time.perf_counter() - t0
            print(f"  … {state['n']} messages, {state['n'] / el:.0f}/s, failures {state['failed']}",
                  file=sys.stderr, flush=True)

    chunk = 0
    while state["n"] < a.count and not (deadline and time.perf_counter() > deadline):
        @seed(a.seed + chunk)
        @settings(max_examples=min(a.chunk, a.count - state["n"]), deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(raw):  # noqa: ANN001
            one(raw)

        try:
            run()
        except Enough:
            break
        chunk += 1

    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = state["n"]
    print(f"properties over generated and mutated messages (seed {a.seed}, in-process triage, each message twice)")
    print(f"messages checked: {n} ({state['bytes'] / 1e6:.0f} MB); wall {wall:.0f} s; {n / wall:.1f} messages/s "
          f"(two triages each); CPU {cpu:.0f} s, {cpu / max(n, 1) * 1000:.1f} ms CPU per message (generation included); "
          f"slowest message {state['slowest'] * 1000:.0f} ms")
    if n < a.count:
        print(f"stopped early: {a.count} messages would take about {a.count / (n / wall) / 60:.0f} min at this "
              f"wall rate, {a.count * cpu / n / 60:.0f} min of CPU (one core)")
    print("decisions: " + ", ".join(f"{k} {v} ({v / n:.0%})" for k, v in decisions.most_common()))
    print("manual/ignored reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common(12)))
    print(f"replies checked (CPR, address): {state['replies']}")
    print(f"failures: {state['failed']}" + (f" — {dict(failures)}; messages in {a.out}" if state["failed"] else " (0 expected)"))
    return 1 if state["failed"] else 0


if __name__ == "__main__":
    os.environ.setdefault("INTAKE_LOG_LEVEL", "warning")
    raise SystemExit(main())
