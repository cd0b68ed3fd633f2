"""The `intake` command line: `triage` (decide, no I/O beyond reading files), `run` (the daemon)."""

from __future__ import annotations

import argparse
import json
import signal
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
    from intake.service.staff import evidence_lines

    lines += ["  " + ln for ln in evidence_lines(d.get("evidence") or {})]
    r = d.get("reply")
    if r:
        lines.append(f"  svar: {r['kind']} til {r['to']}: {r['subject']}")
    else:
        lines.append("  svar: intet")
    return "\n".join(lines)


def cmd_triage(args: argparse.Namespace) -> int:
    from intake.core.triage import Result
    from intake.edges.worker import triager

    settings = load_settings(args.config)
    if args.in_process:
        settings.triage.limits.worker = False
    decide = triager(settings)  # a worker process with time and memory limits, as in the daemon
    for path in args.files:
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            d = Result(decision="manual", manual_reason="unreadable_file").as_dict()
            print(f"intake: cannot read {path}: {e.strerror}", file=sys.stderr)
        else:
            result, _parsed = decide(raw)
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
    # A stop asked for while the daemon is still loading is kept and honoured once it runs.
    early: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signal.Signals(signum).name))
    from intake.service.daemon import main as daemon_main
    from intake.edges.instance_lock import StoreLocked

    try:
        return daemon_main(args.config, once=args.once, early_stop=early)
    except StoreLocked as e:  # one line, exit 2: another daemon has the store
        print(f"intake: {e}", file=sys.stderr)
        return 2


def cmd_db(args: argparse.Namespace) -> int:
    """`db current` (exit 0 when current, 1 otherwise) and `db upgrade` (under the store's lock)."""
    from intake.edges import schema
    from intake.edges.instance_lock import StoreLocked, acquire

    url = load_settings(args.config).store.url
    if args.action == "current":
        st = schema.status(url)
        print(f"current: {st.current or '-'}\nhead:    {st.head}\nstate:   {st.state}")
        if st.state != "current":
            print(f"intake: {schema.SchemaMismatch(st).message(args.config)}", file=sys.stderr)
        return 0 if st.state == "current" else 1
    try:  # never under a live daemon (nor a remind, nor a second upgrade)
        lock = acquire(url, "intake db upgrade")
    except StoreLocked as e:
        print(f"intake: {e}", file=sys.stderr)
        return 2
    try:
        before, after = schema.upgrade(url)
    finally:
        lock.release()
    print(f"store schema: {before or '(empty)'} -> {after}" + (" (already current)" if before == after else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from intake.service.demo import main as demo_main

    return demo_main(args.workdir, keep=args.keep)


def _now(args: argparse.Namespace):
    import datetime as dt

    if not getattr(args, "now", None):
        return None
    d = dt.datetime.fromisoformat(args.now)
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def cmd_cases(args: argparse.Namespace) -> int:
    from intake.service.staff import Staff, print_out

    staff = Staff(load_settings(args.config), _now(args))
    if args.action == "list":
        print_out(staff.cases_list(args.status, args.overdue))
    elif args.action == "show":
        text = staff.case_show(args.ref)
        if text is None:
            print(f"intake: no case {args.ref}", file=sys.stderr)
            return 1
        if args.reveal:
            from intake.service.staff import reveal

            text += f"\n  CPR (vist, logget): {reveal(staff.settings, args.ref, args.gnupghome)}"
        print_out(text)
    elif args.action == "close":
        if not staff.case_close(args.ref, args.reason):
            print(f"intake: no case {args.ref}", file=sys.stderr)
            return 1
        print(f"{args.ref} lukket: {args.reason}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from intake.service.staff import Staff, print_out

    print_out(Staff(load_settings(args.config)).report(args.month))
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from intake.service.staff import requeue

    if not (args.message_id or args.all):
        print("intake: name --message-id ID or --all", file=sys.stderr)
        return 2
    n = requeue(load_settings(args.config), args.message_id, args.all)
    print(f"{n} besked(er) flyttet tilbage til indbakken; de triageres ved næste kørsel")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from intake.edges.archive import ArchiveError
    from intake.service.staff import ExportError, export

    try:
        files = export(load_settings(args.config), args.ref, Path(args.out), args.gnupghome)
    except LookupError:
        print(f"intake: no case {args.ref}", file=sys.stderr)
        return 1
    except (ExportError, ArchiveError) as e:
        print(f"intake: export failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"intake: export failed: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    for f in files:
        print(f)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from intake.service import logs
    from intake.config import DECISIONS
    from intake.edges.retention import purge
    from intake.edges.store import Store, utcnow

    logs.configure("warning")
    settings = load_settings(args.config)
    items = purge(settings, Store(settings.store.url), _now(args) or utcnow(), dry_run=args.dry_run)
    verb = "ville blive fjernet" if args.dry_run else "fjernet"
    for p in items:
        if p.case_ref:  # messages with no case: counted per decision below
            print(f"{p.case_ref}  {p.status} {p.since}  {p.decision}  beskeder: {p.messages}  "
                  f"arkivfiler: {p.archive_files}  svartekster: {p.replies}")
    cases = {p.case_ref for p in items if p.case_ref}
    print(f"{len(cases)} sager, {sum(p.messages for p in items)} beskeder: "
          f"rå indhold og personoplysninger {verb}")
    sec = settings.security
    for d in DECISIONS:
        mine = [p for p in items if p.decision == d]
        print(f"  {d:<11} opbevaring {sec.retention_for(d):>3} dage: "
              f"{len({p.case_ref for p in mine if p.case_ref})} sager, "
              f"{sum(p.messages for p in mine)} beskeder, {sum(p.archive_files for p in mine)} arkivfiler, "
              f"{sum(p.replies for p in mine)} svartekster")
    return 0


def cmd_remind(args: argparse.Namespace) -> int:
    import asyncio

    from intake.service import logs
    from intake.service.daemon import Daemon
    from intake.edges.instance_lock import StoreLocked
    from intake.edges.store import utcnow

    logs.configure("info")
    try:  # the daemon's lock: not while a daemon (or another remind) has the store
        d = Daemon(load_settings(args.config), command="intake remind")
    except StoreLocked as e:
        print(f"intake: {e}", file=sys.stderr)
        return 2
    try:
        d.scheduler.run(_now(args) or utcnow())
        asyncio.run(d.outbox.send_all())
    finally:
        d.close()
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from intake.service import logs, outbox_admin
    from intake.service.staff import actor, print_out
    from intake.edges.store import Store

    settings = load_settings(args.config)
    store = Store(settings.store.url)
    if args.action == "list":
        print_out(outbox_admin.table(store, args.state, ZoneInfo(settings.cases.timezone)))
        return 0
    logs.configure("info", stream=sys.stderr)  # the audit line: stdout is for the answer
    how = "sent" if args.sent else "resend"
    try:
        outbox_admin.resolve(store, args.id, how, args.by or actor())
    except outbox_admin.ResolveError as e:
        print(f"intake: {e}", file=sys.stderr)
        return 1
    print(f"svar #{args.id}: " + ("markeret som sendt" if how == "sent"
                                  else "sat til afsendelse igen; dæmonen sender det inden for et minut"))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from intake.service.backup import BackupError, backup, when

    try:
        info = backup(load_settings(args.config), Path(args.out))
    except BackupError as e:
        print(f"intake: {e}", file=sys.stderr)
        return 1
    print(f"backup: {info.path} ({info.size} bytes, mode 0600)")
    print(f"schema revision: {info.revision or 'none recorded'}")
    print("contents: " + ", ".join(f"{n} {t}" for t, n in info.counts.items()) + f"; newest record {when(info.newest)}")
    if info.key_file:
        print(f"HMAC key: {info.key_file} is NOT in the backup; back it up separately (with the other "
              "credentials): without it, restored cases no longer match citizens by CPR")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from intake.edges.instance_lock import StoreLocked
    from intake.service.backup import BackupError, mark_uncertain, restore, when

    settings = load_settings(args.config)
    try:
        if args.mark_uncertain:
            ids = mark_uncertain(settings)
            print(f"{len(ids)} outbox entries pending or sending at backup time marked uncertain "
                  "(intake outbox list)")
            return 0
        if not args.from_:
            print("intake: name the backup: --from FILE", file=sys.stderr)
            return 2
        info = restore(settings, Path(args.from_), force=args.force, config=args.config)
    except StoreLocked as e:
        print(f"intake: {e}", file=sys.stderr)
        return 2
    except BackupError as e:
        print(f"intake: {e}", file=sys.stderr)
        return 1
    print(f"restored {args.from_} into {settings.store.url.removeprefix('sqlite:///')}; "
          f"newest record {when(info.newest)}; schema revision {info.revision or 'none recorded'}")
    print(f"{len(info.marked_uncertain)} outbox entries pending or sending at backup time marked uncertain: "
          "they may have been sent after the backup; resolve them (intake outbox list / resolve)")
    for folder, uidvalidity, last_uid in info.checkpoints:
        print(f"IMAP checkpoint {folder}: UIDVALIDITY {uidvalidity}, last UID {last_uid}. Messages filed "
              "after the backup are already in the triage folders: they are not triaged again and their "
              "cases are not in this store; look for them there (received after the time above)")
    rep = info.replaced
    if rep and rep.error:
        print(f"the replaced store could not be read ({rep.error}): what came after the backup is unknown")
    elif rep:
        print(f"the replaced store knew {rep.messages} messages and {rep.sent + len(rep.unsent)} replies "
              f"the backup does not; {rep.sent} of those replies were sent, {len(rep.unsent)} were dropped unsent:")
        for entry_id, kind, to, state, ref in rep.unsent:
            print(f"  dropped: old outbox #{entry_id} {kind} to {to} (case {ref or '-'}, {state}): answer by hand")
    if info.schema_note:
        print(info.schema_note)
    if info.key_file and not info.key_present:
        print(f"HMAC key: {info.key_file} is missing: restore it from the credentials backup BEFORE "
              "starting the daemon (a new key would be made, and follow-ups would not match by CPR)")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from intake.service.checkconfig import run as check

    report = check(args.config, connect=args.connect)
    if report.effective:
        print("effective configuration (secrets: paths only):")
        for line in report.effective:
            print(f"  {line}")
    for line in report.ok:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"intake: check-config: {line}", file=sys.stderr)
    print(f"{len(report.problems)} problem(s)" if report.problems else "configuration ok")
    return 1 if report.problems else 0


def cmd_health(args: argparse.Namespace) -> int:
    from intake.service.health import main as health_main

    return health_main(load_settings(args.config), args.max_sync_age_minutes, args.max_outbox_age_minutes,
                       as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="intake", description="SME e-mail intake and triage")
    ap.add_argument("--version", action="version", version=f"sme-intake {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("triage", help="decide what the daemon would do with .eml files (no network)")
    t.add_argument("--config", help="TOML config file (built-in defaults without it)")
    t.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    t.add_argument("--show-reply", action="store_true", help="print the reply body too")
    t.add_argument("--in-process", action="store_true",
                   help="triage in this process, without the worker's time and memory limits (debugging)")
    t.add_argument("files", nargs="+", metavar="FILE.eml")
    t.set_defaults(func=cmd_triage)

    r = sub.add_parser("run", help="run the intake daemon")
    r.add_argument("--config", required=True, help="TOML config file")
    r.add_argument("--once", action="store_true", help="process everything waiting, then exit")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("cases", help="staff: list, show or close cases (CPR always masked)")
    csub = c.add_subparsers(dest="action", required=True)
    cl = csub.add_parser("list", help="a table of cases")
    cl.add_argument("--status", choices=["accepted", "incomplete", "redirected", "closed"])
    cl.add_argument("--overdue", action="store_true", help="accepted cases past their due date")
    cs = csub.add_parser("show", help="one case with its messages and replies")
    cs.add_argument("ref")
    cs.add_argument("--reveal", action="store_true",
                    help="show the full CPR number (needs the archive key; written to the audit log)")
    cs.add_argument("--gnupghome", help="keyring with the archive key (default: your own)")
    cc = csub.add_parser("close", help="close a case by hand")
    cc.add_argument("ref")
    cc.add_argument("--reason", required=True)
    for x in (cl, cs, cc):
        x.add_argument("--config", required=True)
        x.add_argument("--now", help=argparse.SUPPRESS)
    c.set_defaults(func=cmd_cases)

    rp = sub.add_parser("report", help="CSV of accepted referrals per municipality and examination")
    rp.add_argument("--config", required=True)
    rp.add_argument("--month", required=True, help="YYYY-MM")
    rp.set_defaults(func=cmd_report)

    rq = sub.add_parser("requeue", help="move messages from the manual folder back for a new triage")
    rq.add_argument("--config", required=True)
    rq.add_argument("--message-id")
    rq.add_argument("--all", action="store_true")
    rq.set_defaults(func=cmd_requeue)

    ex = sub.add_parser("export", help="write a case's messages and files (needs the archive key; audited)")
    ex.add_argument("ref")
    ex.add_argument("--config", required=True)
    ex.add_argument("--out", required=True, help="folder to write to")
    ex.add_argument("--gnupghome", help="keyring with the archive key (default: your own)")
    ex.set_defaults(func=cmd_export)

    pg = sub.add_parser("purge", help="retention: remove raw content and personal data of old cases")
    pg.add_argument("--config", required=True)
    pg.add_argument("--dry-run", action="store_true", help="only show what would go")
    pg.add_argument("--now", help=argparse.SUPPRESS)
    pg.set_defaults(func=cmd_purge)

    rm = sub.add_parser("remind", help="run the scheduler once: reminders, closings, digest; send")
    rm.add_argument("--config", required=True)
    rm.add_argument("--now", help="ISO date-time to run as (default: now)")
    rm.set_defaults(func=cmd_remind)

    ob = sub.add_parser("outbox", help="staff: replies that need a person (uncertain, failed)")
    osub = ob.add_subparsers(dest="action", required=True)
    ol = osub.add_parser("list", help="a table of outbox entries (default: uncertain and failed)")
    ol.add_argument("--state", choices=["uncertain", "failed", "pending", "all"], default="attention")
    orv = osub.add_parser("resolve", help="settle an uncertain or failed reply by hand (audited)")
    orv.add_argument("id", type=int)
    how = orv.add_mutually_exclusive_group(required=True)
    how.add_argument("--sent", action="store_true", help="it did reach the recipient")
    how.add_argument("--resend", action="store_true", help="send it again (the daemon does)")
    orv.add_argument("--by", help="who resolves it (default: your user name)")
    for x in (ol, orv):
        x.add_argument("--config", required=True)
    ob.set_defaults(func=cmd_outbox)

    bk = sub.add_parser("backup", help="a consistent copy of the SQLite store while the daemon runs")
    bk.add_argument("--config", required=True)
    bk.add_argument("--out", required=True, help="the backup file to write (must not exist)")
    bk.set_defaults(func=cmd_backup)

    rs = sub.add_parser("restore", help="put a backup in place of the store (daemon stopped)")
    rs.add_argument("--config", required=True)
    rs.add_argument("--from", dest="from_", help="the backup file")
    rs.add_argument("--force", action="store_true", help="replace a store that holds data")
    rs.add_argument("--mark-uncertain", action="store_true",
                    help="after a pg_restore: mark replies pending or sending at backup time uncertain")
    rs.set_defaults(func=cmd_restore)

    ck = sub.add_parser("check-config", help="validate config, rules, templates, secrets and store; "
                                             "print the effective configuration")
    ck.add_argument("--config", required=True)
    ck.add_argument("--connect", action="store_true", help="also try the IMAP, SMTP and store connections")
    ck.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="the store's schema: current version, upgrade to this build's")
    dbsub = db.add_subparsers(dest="action", required=True)
    for name, text in (("current", "print the store's revision, this build's head and the state"),
                       ("upgrade", "bring the store to this build's schema (stop the daemon, back up first)")):
        dbsub.add_parser(name, help=text).add_argument("--config", required=True)
    db.set_defaults(func=cmd_db)

    he = sub.add_parser("health", help="is the daemon well? exit 0 healthy, 1 not (for monitoring checks)")
    he.add_argument("--config", required=True)
    he.add_argument("--max-sync-age-minutes", type=float, default=None,
                    help="unhealthy without a successful sync for this long (default: [health])")
    he.add_argument("--max-outbox-age-minutes", type=float, default=None,
                    help="unhealthy when a reply has waited this long (default: [health])")
    he.add_argument("--json", action="store_true", help="one JSON object instead of text")
    he.set_defaults(func=cmd_health)

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
    except Exception as e:
        from intake.edges.schema import SchemaMismatch  # here, not up front: `triage` needs no database

        if not isinstance(e, SchemaMismatch):
            raise
        # the store is behind or ahead of this build: one line naming the command, exit 2
        print(f"intake: {e.message(getattr(args, 'config', None))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
