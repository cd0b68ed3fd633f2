"""The tools SME staff and ops use every day: cases list/show/close, the monthly invoicing
report, requeue from the manual folder, and running the scheduler by hand. CPR numbers are
only ever shown masked.
"""

from __future__ import annotations

import json

import csv
import datetime as dt
import io
import os
import sys
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

from sqlmodel import select

from intake.edges import archive
from intake.service import logs
from intake.config import Settings
from intake.service.scheduler import Scheduler
from intake.edges.store import AuditEvent, Case, MessageRecord, OutboxEntry, Store, aware, utcnow

OPEN = ("incomplete", "accepted")


EVIDENCE_LABELS = {"name": "navn", "cpr": "cpr", "examinations": "undersøgelse", "problem": "problemstilling",
                   "attachments": "sagsakter", "decision": "afgørelse", "documents": "skemaer"}


def evidence_lines(evidence: dict) -> list[str]:
    """Where each field and the decision came from, one line per field (staff read this to
    trust or correct the machine); CPR numbers are masked already."""
    out = []
    for key, label in EVIDENCE_LABELS.items():
        entries = evidence.get(key) or []
        if key == "attachments":
            continue
        if entries:
            out.append(f"{label + ':':<17}" + "; ".join(f"{e.get('source')} ({e.get('rule')})" for e in entries[:4]))
        elif key in ("name", "cpr", "examinations", "problem"):
            out.append(f"{label + ':':<17}ikke fundet")
    return out


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


class Staff:
    def __init__(self, settings: Settings, now: dt.datetime | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.store.url)
        self.sched = Scheduler(settings, self.store)
        self.now = now or utcnow()
        self.today = self.sched.local(self.now)

    def _age(self, c: Case) -> int:
        end = self.sched.local(c.closed_at) if c.closed_at else self.today
        return self.sched.calendar.between(self.sched.local(c.created_at), end)

    def _overdue(self, c: Case) -> bool:
        return c.status == "accepted" and c.due_date is not None and c.due_date < self.today

    def cases_list(self, status: str | None = None, overdue: bool = False) -> str:
        with self.store.session() as s:
            q = select(Case).order_by(Case.id)
            if status:
                q = q.where(Case.status == status)
            cases = [c for c in s.exec(q) if not overdue or self._overdue(c)]
        rows = [[c.ref, c.status + (" (over frist)" if self._overdue(c) else ""), c.municipality or "-",
                 c.examinations.replace(",", ", ") or "-", c.missing.replace(",", ", ") or "-",
                 str(self._age(c)), c.due_date.strftime("%d.%m.%Y") if c.due_date else "-",
                 c.cpr_masked or "-"] for c in cases]
        return _table(rows, ["REFERENCE", "STATUS", "KOMMUNE", "UNDERSØGELSE", "MANGLER",
                             "ALDER (arb.dage)", "SVARFRIST", "CPR"]) + f"\n{len(rows)} sager"

    def case_show(self, ref: str) -> str | None:
        with self.store.session() as s:
            c = s.exec(select(Case).where(Case.ref == ref)).first()
            if c is None:
                return None
            msgs = list(s.exec(select(MessageRecord).where(MessageRecord.case_id == c.id).order_by(MessageRecord.id)))
            outs = list(s.exec(select(OutboxEntry).where(OutboxEntry.case_id == c.id).order_by(OutboxEntry.id)))
        fmt = lambda d: aware(d).astimezone(self.sched.tz).strftime("%d.%m.%Y %H:%M") if d else "-"  # noqa: E731
        lines = [
            f"Sag {c.ref}: {c.status}" + (" (over svarfristen)" if self._overdue(c) else ""),
            f"  Kommune:       {c.municipality or '-'} ({c.sender or '-'})",
            f"  Borger:        {c.client_name or '-'}   CPR {c.cpr_masked or '-'}",
            f"  Undersøgelse:  {c.examinations.replace(',', ', ') or '-'}",
            f"  Mangler:       {c.missing.replace(',', ', ') or '-'}",
            f"  Sagsakter:     {c.attachments}",
            f"  Oprettet:      {fmt(c.created_at)}   alder {self._age(c)} arbejdsdage",
            f"  Svarfrist:     {c.due_date.strftime('%d.%m.%Y') if c.due_date else '-'}",
            f"  Påmindet:      {fmt(c.reminded_at)}",
        ]
        if c.closed_at:
            lines.append(f"  Lukket:        {fmt(c.closed_at)} ({c.close_reason})")
        lines.append("  Beskeder:")
        for m in msgs:
            lines.append(f"    #{m.id} {fmt(m.received_at)} {m.decision}{' (opfølgning)' if m.followup else ''}"
                         f" -> {m.filed_folder or m.target_folder} [{m.state}]")
            lines += ["      " + ln for ln in evidence_lines(json.loads(m.evidence) if m.evidence else {})]
        lines.append("  Svar:")
        for o in outs:
            lines.append(f"    #{o.id} {o.kind} til {o.to_addr}: {o.state} {fmt(o.sent_at)}")
        return "\n".join(lines)

    def case_close(self, ref: str, reason: str) -> bool:
        with self.store.session() as s:
            c = s.exec(select(Case).where(Case.ref == ref)).first()
            if c is None:
                return False
            c.status, c.closed_at, c.close_reason, c.updated_at = "closed", self.now, reason, self.now
            s.add(c)
        return True

    def report(self, month: str) -> str:
        """CSV: accepted referrals per municipality and examination in `month` (YYYY-MM)."""
        year, mon = (int(x) for x in month.split("-"))
        start = dt.date(year, mon, 1)
        end = dt.date(year + (mon == 12), mon % 12 + 1, 1)
        counts: Counter = Counter()
        with self.store.session() as s:
            for c in s.exec(select(Case).where(Case.accepted_at.is_not(None))):
                if start <= self.sched.local(c.accepted_at) < end:
                    for exam in (c.examinations.split(",") if c.examinations else ["ukendt"]):
                        counts[(c.municipality or "ukendt", exam)] += 1
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["month", "municipality", "examination", "accepted_referrals"])
        for (muni, exam), n in sorted(counts.items()):
            w.writerow([month, muni, exam, n])
        return buf.getvalue()


def actor() -> str:
    import getpass

    return os.environ.get("SUDO_USER") or getpass.getuser()


def audit(store: Store, action: str, case_ref: str | None, detail: str | None = None) -> None:
    """Every look at personal data leaves a trace: in the store and in the log."""
    who = actor()
    with store.session() as s:
        s.add(AuditEvent(actor=who, action=action, case_ref=case_ref, detail=detail))
    logs.get("intake.audit").info("audit", actor=who, action=action, case=case_ref, detail=detail)


def _archived(store: Store, ref: str) -> tuple[Case | None, list[MessageRecord]]:
    with store.session() as s:
        c = s.exec(select(Case).where(Case.ref == ref)).first()
        recs = list(s.exec(select(MessageRecord).where(MessageRecord.case_id == c.id)
                           .order_by(MessageRecord.id))) if c else []
    return c, [r for r in recs if r.archive_path]


def reveal(settings: Settings, ref: str, gnupghome: str | None) -> str | None:
    """The full CPR number of a case, read from its archived message with the reader's key."""
    from intake.core.triage import triage

    store = Store(settings.store.url)
    case, recs = _archived(store, ref)
    if case is None:
        return None
    audit(store, "reveal", ref)
    for r in recs:
        result, _ = triage(archive.read(Path(r.archive_path), gnupghome), settings)
        if result.cpr_digits:
            return f"{result.cpr_digits[:6]}-{result.cpr_digits[6:]}"
    return "(ikke i de arkiverede beskeder)"


class ExportError(Exception):
    """The export folder cannot be used safely (a symlink, not ours, open to others)."""


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _export_dir(out_dir: Path) -> int:
    """Open the export folder (created 0700 when missing) and return a descriptor for it: all
    files are created relative to it, so a folder swapped for a symlink afterwards changes
    nothing. An existing folder must be a real directory of ours that no one else can enter."""
    created = False
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(out_dir, 0o700)
        created = True
    except FileExistsError:
        pass
    try:
        fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise ExportError(f"{out_dir}: not a directory (or a symlink): {e.strerror}") from e
    st = os.fstat(fd)
    if created:
        os.fchmod(fd, 0o700)  # whatever the umask
    elif st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise ExportError(f"{out_dir}: the export folder must be yours and closed to others "
                          f"(mode {st.st_mode & 0o777:o}); use a new folder or chmod 700 it")
    return fd


def _write_new(dir_fd: int, name: str, data: bytes) -> str:
    """Create `name` in the folder, mode 0600, never overwriting and never following a symlink:
    when the name is taken (a file or a symlink), `stem-2.ext`, `stem-3.ext`, … instead."""
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    for n in range(1, 101):
        candidate = name if n == 1 else f"{stem}-{n}{dot}{ext}"
        try:
            fd = os.open(candidate, _CREATE, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # whatever the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(candidate, dir_fd=dir_fd)  # no half-written file
            raise
        return candidate
    raise ExportError(f"{name}: 100 files of that name already in the export folder")


def export(settings: Settings, ref: str, out_dir: Path, gnupghome: str | None) -> list[Path]:
    """Write the case's messages and their attachments for a person with the archive key.

    Names: `NN-besked.eml` for the n-th message, `NN-II-<safe filename>` for its part number II,
    so two attachments of the same name never meet. Files are new (O_EXCL), mode 0600, never
    through a symlink (O_NOFOLLOW, relative to the opened folder); the folder is 0700. The audit
    event is written when the files are: `export`, or `export_failed` with what got out."""
    from intake.core.mimeparse import safe_filename
    from intake.edges.secure import needs_unwrap
    from intake.core.triage import unwrapper_for

    store = Store(settings.store.url)
    case, recs = _archived(store, ref)
    if case is None:
        raise LookupError(ref)
    written: list[Path] = []
    try:
        dir_fd = _export_dir(out_dir)
        try:
            for n, r in enumerate(recs, 1):
                raw = archive.read(Path(r.archive_path), gnupghome)
                if needs_unwrap(raw):  # an encrypted or signed referral: its content
                    raw = unwrapper_for(settings).unwrap(raw).raw
                written.append(out_dir / _write_new(dir_fd, f"{n:02d}-besked.eml", raw))
                msg = message_from_bytes(raw, policy=policy.default)
                for i, part in enumerate(msg.walk()):
                    if part.is_multipart() or part.get_content_disposition() != "attachment":
                        continue
                    name = safe_filename(part.get_filename(), part.get_content_type(), i)
                    data = part.get_payload(decode=True) or b""
                    written.append(out_dir / _write_new(dir_fd, f"{n:02d}-{i:02d}-{name}", data))
        finally:
            os.close(dir_fd)
    except BaseException as e:
        audit(store, "export_failed", ref,
              f"{len(written)} files written to {out_dir} before {type(e).__name__}")
        raise
    audit(store, "export", ref, f"{len(recs)} messages, {len(written)} files to {out_dir}")
    return written


OUR_KEYWORDS = (b"sme-", b"grund-", b"mangler-", b"usikker-")  # set by the daemon when filing


def requeue(settings: Settings, message_id: str | None, all_: bool) -> int:
    """Move messages from the manual folder (and its per-reason subfolders) back to the inbox
    for a new triage, without the old decision's keywords (the next filing sets its own)."""
    from intake.edges.imapconn import Mailbox

    store = Store(settings.store.url)
    mb = Mailbox(settings.mailbox)
    mb.connect()
    moved = 0
    try:
        c = mb.client
        manual = mb.server_folder(settings.folders.manual)
        folders = [manual] + sorted(f[2] for f in c.list_folders(manual + mb.delimiter, "*")
                                    if b"\\Noselect" not in f[0])
        for folder in folders:
            c.select_folder(folder)
            uids = c.search(["HEADER", "Message-ID", message_id]) if message_id else (c.search("ALL") if all_ else [])
            if not uids:
                continue
            data = c.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            ids = []
            ours: set[bytes] = set()
            for uid in uids:
                hdr = data.get(uid, {}).get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"")
                ids.append(hdr.split(b":", 1)[1].strip().decode("ascii", "replace") if b":" in hdr else None)
                ours |= {f for f in data.get(uid, {}).get(b"FLAGS", ()) if f.lower().startswith(OUR_KEYWORDS)}
            with store.session() as s:  # first the store: a requeued record is triaged afresh
                for mid in filter(None, ids):
                    for rec in s.exec(select(MessageRecord).where(MessageRecord.message_id == mid,
                                                                  MessageRecord.decision == "manual")):
                        rec.state = "requeued"
                        s.add(rec)
            if ours:
                try:
                    c.remove_flags(uids, sorted(ours), silent=True)
                except Exception:  # noqa: BLE001 - a server that refuses keywords: nothing to remove
                    pass
            mb.file(list(uids), settings.mailbox.folder, [None] * len(uids))
            moved += len(uids)
        return moved
    finally:
        mb.close()


def print_out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
