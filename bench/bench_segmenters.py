"""Evaluate the libraries the issue names against our own corpus, in the real triage:

- mail-parser-reply (Danish reply/forward splitting) in place of intake.core.segments, on the
  forward and reply messages;
- inscriptis (HTML to text keeping table layout) in place of intake.core.htmltext, on the HTML
  messages.

Each variant runs the whole triage on its slice of tests/corpus and prints decisions right,
wrong automatic replies and time per message, next to our own modules.

    .venv/bin/python bench/bench_segmenters.py
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intake.core import mimeparse, segments, triage as triage_mod  # noqa: E402
from intake.config import Settings  # noqa: E402
from intake.core.rules import load_rules  # noqa: E402
from tests.corpus.corpus import load, verdict  # noqa: E402

TODAY = dt.date(2026, 11, 25)


@contextmanager
def patched(obj, name, value):  # noqa: ANN001
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def mpr_segment(text, subject, signature_start, own_addresses=frozenset(), field_line=None):  # noqa: ANN001
    """mail-parser-reply's reading: its latest reply is the new text, everything else history."""
    from mailparser_reply import EmailReplyParser

    msg = EmailReplyParser(languages=["da", "en"]).read(text)
    latest = msg.latest_reply or ""
    rest = "\n".join(r.full_body for r in msg.replies[1:]) if len(msg.replies) > 1 else ""
    out = [segments.Segment("new", latest, "body")]
    if rest.strip():
        out.append(segments.Segment("quoted", rest, "quoted"))
    return out


def inscriptis_text(html: str, limit: int = 2_000_000) -> str:
    from inscriptis import get_text
    from inscriptis.model.config import ParserConfig

    return get_text(html[: limit * 4], ParserConfig(display_links=False))


def run(cases, label: str) -> None:
    settings, rules = Settings(), load_rules(None)
    right = wrong = 0
    t0 = time.perf_counter()
    for c in cases:
        d = triage_mod.triage(c.raw, settings, rules, today=TODAY)[0].as_dict()
        r, w = verdict(c, d)
        right += r
        wrong += w
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(cases))
    print(f"  {label:<34} right {right:>3}/{len(cases):<3} wrong replies {wrong:>3}   {ms:6.1f} ms/message")


def main() -> int:
    cases = load()
    threads = [c for c in cases if c.cls in ("forward", "reply")]
    html = [c for c in cases if c.cls == "html" or (c.batch == "d_portal" and b"text/html" in c.raw)]
    print(f"forwards and replies ({len(threads)} messages):")
    run(threads, "intake.core.segments (ours)")
    with patched(segments, "segment", mpr_segment):
        run(threads, "mail-parser-reply latest_reply")
    print(f"HTML messages ({len(html)}):")
    run(html, "intake.core.htmltext (lxml, ours)")
    with patched(mimeparse, "html_to_text", inscriptis_text):
        run(html, "inscriptis get_text")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
