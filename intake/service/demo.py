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

from intake.core.cpr import mask_text
from intake.edges.devservers import Dovecot, SmtpSink, TestCA, write_config

ROOT = Path(__file__).resolve().parents[2]  # the checkout: intake/service/demo.py


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


def _run_once(config: Path, base: Path) -> int:
    print(f"== intake run --once --config {config}   (log: {base / 'intake.log'})")
    with open(base / "intake.log", "a") as log:
        p = subprocess.run([sys.executable, "-m", "intake", "run", "--once", "--config", str(config)],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"   exit {p.returncode}")
    return p.returncode


def _show_folders(dovecot: Dovecot) -> None:
    print("\n== Triage-mapper")
    for name, msgs in sorted(dovecot.folder_messages().items()):
        print(f"  {name}: {len(msgs)}")
        for raw, flags in msgs:
            kws = " ".join(f.decode() for f in flags if not f.startswith(b"\\"))
            print(f"     - {_subject(raw)[:70]}   [{kws}]")


def _show_reply(m) -> None:  # noqa: ANN001
    print(f"\n  Til: {m['To']}\n  Emne: {m['Subject']}\n  Auto-Submitted: {m['Auto-Submitted']}")
    body = m.get_content().strip().splitlines()
    for line in body[:14]:
        print(f"  | {line}")
    if len(body) > 14:
        print(f"  | … ({len(body) - 14} linjer mere)")


def _answer(reply) -> bytes:  # noqa: ANN001
    """A caseworker's answer: the CPR number on top, our mail quoted below (Outlook style)."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = reply["To"]
    msg["To"] = "socialmedicin@rn.dk"
    msg["Subject"] = "SV: " + str(reply["Subject"])
    msg["Message-ID"] = "<demo-answer@hjoerring.dk>"
    msg["In-Reply-To"] = reply["Message-ID"]
    msg["References"] = reply["Message-ID"]
    msg.set_content("Hej\n\nCPR-nummeret er 120385-1233.\n\nMvh\n\nFra: Socialmedicinsk Enhed\n"
                    f"Sendt: {reply['Date']}\nEmne: {reply['Subject']}\n\n" + reply.get_content())
    return msg.as_bytes()


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
        rc = _run_once(config, base)
        _show_folders(dovecot)
        replies = sink.wait_for(1, timeout=5)
        print(f"\n== Svar sendt via SMTP: {len(replies)}  (gemt i {base / 'replies'})")
        for r in replies:
            _show_reply(r["message"])
        asked = next((r["message"] for r in replies if "mangler" in str(r["message"]["Subject"])
                      and "CPR-nummer" in r["message"].get_content()), None)
        if asked is not None and rc == 0:
            print("\n== Opfølgning: sagsbehandleren svarer på vores mail med CPR-nummeret")
            dovecot.append(_answer(asked))
            rc = _run_once(config, base)
            for r in sink.wait_for(len(replies) + 1, timeout=5)[len(replies):]:
                _show_reply(r["message"])
            _show_folders(dovecot)
        return rc
    finally:
        sink.stop()
        dovecot.stop()
        if not keep and workdir is None:
            shutil.rmtree(base, ignore_errors=True)
