"""The `intake` command line: `triage` (decide, no I/O beyond reading files), `run` (the daemon)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from intake import __version__
from intake.config import ConfigError, load_settings


def _explain(path: str, d: dict) -> str:
    lines = [f"{path}: {d['decision']}"]
    reason = d.get("manual_reason") or d.get("redirect_reason") or d.get("ignored_reason")
    if reason:
        lines[0] += f" ({reason})"
    if d.get("missing"):
        lines.append("  mangler: " + ", ".join(d["missing"]))
    facts = []
    if d.get("name"):
        facts.append(f"navn: {d['name']}")
    if d.get("cpr"):
        facts.append(f"cpr: {d['cpr']} (født {d['birth_date']})")
    if d.get("phone"):
        facts.append(f"tlf: {d['phone']}")
    if facts:
        lines.append("  " + "   ".join(facts))
    if d.get("examinations"):
        lines.append("  undersøgelse: " + ", ".join(d["examinations"]))
    if d.get("attachments"):
        names = ", ".join(a["filename"] for a in d["attachments"][:6])
        more = f" (+{len(d['attachments']) - 6})" if len(d["attachments"]) > 6 else ""
        lines.append(f"  sagsakter: {len(d['attachments'])}: {names}{more}")
    r = d.get("reply")
    if r:
        lines.append(f"  svar: {r['kind']} til {r['to']}: {r['subject']}")
    else:
        lines.append("  svar: intet")
    return "\n".join(lines)


def cmd_triage(args: argparse.Namespace) -> int:
    from intake.rules import load_rules
    from intake.triage import Result, triage

    settings = load_settings(args.config)
    rules = load_rules(settings.triage.rules_file)
    for path in args.files:
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            d = Result(decision="manual", manual_reason="unreadable_file").as_dict()
            print(f"intake: cannot read {path}: {e.strerror}", file=sys.stderr)
        else:
            result, _parsed = triage(raw, settings, rules)
            d = result.as_dict()
        if args.json:
            print(json.dumps({"file": path, **d}, ensure_ascii=False), flush=True)
        else:
            print(_explain(path, d), flush=True)
            if args.show_reply and d.get("reply"):
                print("  " + "\n  ".join(d["reply"]["body"].splitlines()))
            print()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from intake.daemon import main as daemon_main

    return daemon_main(args.config, once=args.once)


def cmd_demo(args: argparse.Namespace) -> int:
    from intake.demo import main as demo_main

    return demo_main(args.workdir, keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="intake", description="SME e-mail intake and triage")
    ap.add_argument("--version", action="version", version=f"sme-intake {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("triage", help="decide what the daemon would do with .eml files (no network)")
    t.add_argument("--config", help="TOML config file (built-in defaults without it)")
    t.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    t.add_argument("--show-reply", action="store_true", help="print the reply body too")
    t.add_argument("files", nargs="+", metavar="FILE.eml")
    t.set_defaults(func=cmd_triage)

    r = sub.add_parser("run", help="run the intake daemon")
    r.add_argument("--config", required=True, help="TOML config file")
    r.add_argument("--once", action="store_true", help="process everything waiting, then exit")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="local Dovecot + SMTP sink + example referrals, one --once run")
    d.add_argument("--workdir", default=None, help="where to put the demo's servers and store")
    d.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    d.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"intake: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
