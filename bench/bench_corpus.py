"""Per-class accuracy and the number of wrong automatic replies on tests/corpus.

    .venv/bin/python bench/bench_corpus.py [-v]
"""

from __future__ import annotations

import collections
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intake.config import Settings  # noqa: E402
from intake.core.rules import load_rules  # noqa: E402
from intake.core.triage import triage  # noqa: E402
from tests.corpus.corpus import describe, load, verdict  # noqa: E402


def main() -> int:
    verbose = "-v" in sys.argv
    cases = load()
    settings, rules = Settings(), load_rules(None)
    per = collections.defaultdict(lambda: [0, 0, 0])  # class -> [n, right, wrong replies]
    t0 = time.perf_counter()
    lines = []
    for c in cases:
        d = triage(c.raw, settings, rules, today=dt.date(2026, 11, 25))[0].as_dict()
        right, wrong_reply = verdict(c, d)
        p = per[c.cls]
        p[0] += 1
        p[1] += right
        p[2] += wrong_reply
        if not right:
            lines.append(("WRONG REPLY " if wrong_reply else "wrong       ") + describe(c, d))
    took = time.perf_counter() - t0
    n = sum(p[0] for p in per.values())
    right = sum(p[1] for p in per.values())
    wrong = sum(p[2] for p in per.values())
    print(f"{'class':<14}{'n':>5}{'right':>7}{'acc':>8}{'wrong replies':>15}")
    for cls, (k, r, w) in sorted(per.items()):
        print(f"{cls:<14}{k:>5}{r:>7}{r / k:>8.1%}{w:>15}")
    print(f"{'all':<14}{n:>5}{right:>7}{right / n:>8.1%}{wrong:>15}")
    print(f"triage time: {took * 1000 / n:.1f} ms/message")
    if verbose:
        print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
