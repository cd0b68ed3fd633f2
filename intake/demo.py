"""`intake demo`: the whole daemon on this machine, with nothing configured.

Starts a private Dovecot and an SMTP sink (both TLS, certificates from a throwaway CA), drops
the example referrals (examples/*.eml) in the inbox, runs `intake run --once` against them
with a SQLite store, and prints what landed in each triage folder and the replies sent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from email import message_from_bytes, policy
from pathlib import Path

from intake.cpr import mask_text
from intake.devservers import Dovecot, SmtpSink, TestCA, write_config

ROOT = Path(__file__).resolve().parent.parent


def _examples() -> list[Path]:
    for folder in (ROOT / "examples", Path.cwd() / "examples"):
        files = sorted(folder.glob("*.eml"))
        if files:
            return files
    raise SystemExit("no examples/*.eml found")


def _subject(raw: bytes) -> str:
    try:
        return mask_text(str(message_from_bytes(raw, policy=policy.default).get("subject", "")))
    except Exception:
        return "(ulæselig)"


def main(workdir: str | None = None, keep: bool = False) -> int:
    base = Path(workdir or tempfile.mkdtemp(prefix="intake-demo-", dir="/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    ca = TestCA(base / "tls")
    dovecot = Dovecot(base / "dovecot", ca).start()
    sink = SmtpSink(ca, folder=base / "replies").start()
    try:
        files = _examples()
        for f in files:
            dovecot.append(f.read_bytes())
        config = write_config(base, dovecot, sink.port, ca, header="# written by `intake demo`")
        print(f"== {len(files)} eksempel-henvisninger lagt i INBOX på en lokal Dovecot (IMAPS :{dovecot.imaps_port})")
        print(f"== intake run --once --config {config}   (log: {base / 'intake.log'})")
        with open(base / "intake.log", "w") as log:
            p = subprocess.run([sys.executable, "-m", "intake", "run", "--once", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        print(f"   exit {p.returncode}\n")
        print("== Triage-mapper")
        for name, msgs in sorted(dovecot.folder_messages().items()):
            print(f"  {name}: {len(msgs)}")
            for raw, flags in msgs:
                kws = " ".join(f.decode() for f in flags if not f.startswith(b"\\"))
                print(f"     - {_subject(raw)[:70]}   [{kws}]")
        replies = sink.wait_for(1, timeout=5)
        print(f"\n== Svar sendt via SMTP: {len(replies)}  (gemt i {base / 'replies'})")
        for r in replies:
            m = r["message"]
            print(f"\n  Til: {m['To']}\n  Emne: {m['Subject']}\n  Auto-Submitted: {m['Auto-Submitted']}")
            body = m.get_content().strip().splitlines()
            for line in body[:14]:
                print(f"  | {line}")
            if len(body) > 14:
                print(f"  | … ({len(body) - 14} linjer mere)")
        return p.returncode
    finally:
        sink.stop()
        dovecot.stop()
        if not keep and workdir is None:
            shutil.rmtree(base, ignore_errors=True)
