"""The daemon's memory (sqlmodel): messages and their decisions, cases, the reply outbox, and the
IMAP checkpoint. SQLite (WAL) by default, any SQLAlchemy URL (PostgreSQL) by configuration.

No CPR number is kept in plaintext: the masked form for display, and an HMAC (key from a
credentials file) where a citizen must be matched.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import event, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, UniqueConstraint, create_engine, select

if TYPE_CHECKING:
    from intake.edges.instance_lock import InstanceLock


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aware(d: dt.datetime) -> dt.datetime:
    """Datetimes read back from SQLite may come without tzinfo: they are UTC."""
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


class MessageRecord(SQLModel, table=True):
    __tablename__ = "messages"
    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = Field(default=None, index=True)
    content_hash: str = Field(index=True)  # sha256 of the raw bytes
    folder: str
    uidvalidity: int
    uid: int
    size: int
    received_at: dt.datetime = Field(default_factory=utcnow)
    decision: str
    reason: str | None = None  # manual / redirect / ignored reason
    missing: str = ""  # comma-separated codes
    examinations: str = ""
    attachments: int = 0
    sender: str | None = None
    municipality: str | None = None
    target_folder: str
    state: str = "decided"  # decided -> filed (-> refile -> filed) | requeued
    filed_at: dt.datetime | None = None
    filed_folder: str | None = None  # where it is now
    followup: bool = False
    encryption: str | None = None  # pgp | smime
    signature_verdict: str | None = None  # valid | invalid | unknown_key
    signer: str | None = None  # OpenPGP fingerprint or certificate subject
    archive_path: str | None = None  # the raw message, encrypted to the archive key
    purged_at: dt.datetime | None = None
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    evidence: str | None = None  # JSON: where each field and the decision came from (CPR masked)


class Case(SQLModel, table=True):
    __tablename__ = "cases"
    id: int | None = Field(default=None, primary_key=True)
    ref: str | None = Field(default=None, index=True, unique=True)  # SME-2026-00042
    status: str  # accepted | incomplete | redirected | closed
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    municipality: str | None = None
    sender: str | None = None
    client_name: str | None = None
    cpr_masked: str | None = None
    cpr_hmac: str | None = Field(default=None, index=True)
    examinations: str = ""
    missing: str = ""
    redirect_reason: str | None = None
    has_problem: bool = False
    attachments: int = 0
    waiting_since: dt.datetime | None = None  # when we last asked for missing items
    reminded_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    due_date: dt.date | None = None  # SLA for accepted referrals
    closed_at: dt.datetime | None = None
    close_reason: str | None = None
    purged_at: dt.datetime | None = None  # personal data and raw content removed (retention)


class OutboxEntry(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("dedupe_key"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str  # "reply:<Message-ID or content hash>": one reply per incoming message
    message_record_id: int | None = Field(default=None, foreign_key="messages.id")
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    kind: str
    to_addr: str = Field(index=True)
    from_addr: str
    reply_message_id: str = Field(index=True)
    raw: bytes
    state: str = "pending"  # pending -> sending -> sent | uncertain | failed
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow)
    last_error: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    sent_at: dt.datetime | None = None


class AuditEvent(SQLModel, table=True):
    """Who saw personal data, when, in which case (cases show --reveal, export)."""
    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow)
    actor: str
    action: str
    case_ref: str | None = Field(default=None, index=True)
    detail: str | None = None


AUTO_REPLY_KINDS = ("acknowledgement", "missing_items", "redirect", "reminder", "closed_unanswered")


class Checkpoint(SQLModel, table=True):
    __tablename__ = "checkpoints"
    folder: str = Field(primary_key=True)
    uidvalidity: int
    last_uid: int = 0
    updated_at: dt.datetime = Field(default_factory=utcnow)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Store:
    def __init__(self, url: str) -> None:
        kwargs: dict = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        from intake.edges.schema import ensure_current

        # an empty store is made at the schema's head (migrations); SchemaMismatch for any other
        ensure_current(url, engine=self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    # --- messages --------------------------------------------------------------------------
    def find_message(self, s: Session, content_hash: str) -> MessageRecord | None:
        """A message decided before (a crash before filing, a new UIDVALIDITY); a resend with
        other bytes is a new message, kept from a second reply by the outbox's dedupe key."""
        return s.exec(select(MessageRecord).where(MessageRecord.content_hash == content_hash,
                                                  MessageRecord.state != "requeued")).first()

    def mark_filed(self, record_ids: list[int], folder: str, uidvalidity: int, last_uid: int) -> None:
        """The messages are in their triage folders: record it and advance the checkpoint."""
        now = utcnow()
        with self.session() as s:
            for rid in record_ids:
                rec = s.get(MessageRecord, rid)
                if rec and rec.state == "decided":
                    rec.state, rec.filed_at, rec.filed_folder = "filed", now, rec.target_folder
                    s.add(rec)
            self._advance(s, folder, uidvalidity, last_uid)

    def pending_refiles(self) -> list[MessageRecord]:
        with self.session() as s:
            return list(s.exec(select(MessageRecord).where(MessageRecord.state == "refile")))

    def refiled(self, record_id: int, folder: str | None) -> None:
        with self.session() as s:
            rec = s.get(MessageRecord, record_id)
            rec.state, rec.filed_at = "filed", utcnow()
            if folder:
                rec.filed_folder = folder
            s.add(rec)

    def replies_to(self, s: Session, addr: str, windows: list[dt.datetime]) -> list[int]:
        """How many automatic replies went to `addr` since each of `windows` (one query)."""
        times = [aware(t) for t in s.exec(select(OutboxEntry.created_at).where(
            OutboxEntry.to_addr == addr, OutboxEntry.created_at >= min(windows),
            OutboxEntry.kind.in_(AUTO_REPLY_KINDS)))]
        return [sum(t >= w for t in times) for w in windows]

    def reply_exists(self, s: Session, dedupe_key: str) -> bool:
        return s.exec(select(OutboxEntry.id).where(OutboxEntry.dedupe_key == dedupe_key)).first() is not None

    # --- checkpoint ------------------------------------------------------------------------
    def checkpoint(self, folder: str) -> Checkpoint | None:
        with self.session() as s:
            return s.get(Checkpoint, folder)

    @staticmethod
    def _advance(s: Session, folder: str, uidvalidity: int, last_uid: int) -> None:
        cp = s.get(Checkpoint, folder)
        if cp is None:
            cp = Checkpoint(folder=folder, uidvalidity=uidvalidity, last_uid=last_uid)
        else:
            if cp.uidvalidity == uidvalidity and cp.last_uid >= last_uid:
                return
            cp.uidvalidity, cp.last_uid, cp.updated_at = uidvalidity, last_uid, utcnow()
        s.add(cp)

    # --- outbox ----------------------------------------------------------------------------
    def due_replies(self, now: dt.datetime | None = None, limit: int = 50) -> list[OutboxEntry]:
        now = now or utcnow()
        with self.session() as s:
            return list(s.exec(
                select(OutboxEntry)
                .where(OutboxEntry.state == "pending", OutboxEntry.next_attempt_at <= now)
                .order_by(OutboxEntry.id).limit(limit)))

    def next_due_at(self) -> dt.datetime | None:
        with self.session() as s:
            nxt = s.exec(select(OutboxEntry.next_attempt_at).where(OutboxEntry.state == "pending")
                         .order_by(OutboxEntry.next_attempt_at)).first()
            return aware(nxt) if nxt else None

    def claim_reply(self, entry_id: int, now: dt.datetime | None = None) -> int | None:
        """Take a due entry for delivery: 'pending' -> 'sending' in one conditional UPDATE, so of
        two senders (the daemon and `intake remind`, two hosts) exactly one gets it. Returns the
        entry's attempts count after the claim, or None when another sender has it (or it is no
        longer due)."""
        now = now or utcnow()
        with self.engine.begin() as c:
            claimed = c.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == entry_id, OutboxEntry.state == "pending",
                       OutboxEntry.next_attempt_at <= now)
                .values(state="sending", attempts=OutboxEntry.attempts + 1)).rowcount
            if claimed != 1:
                return None
            return c.execute(select(OutboxEntry.attempts).where(OutboxEntry.id == entry_id)).scalar_one()

    def set_reply_state(self, entry_id: int, state: str, *, expect: str, **changes) -> bool:
        """Move an entry on from the state `expect` (the claimer's 'sending', or 'pending' for
        one never claimed); False, and nothing written, when it is no longer in that state."""
        with self.engine.begin() as c:
            return c.execute(
                update(OutboxEntry).where(OutboxEntry.id == entry_id, OutboxEntry.state == expect)
                .values(state=state, **changes)).rowcount == 1

    def recover_interrupted_sends(self, lock: "InstanceLock") -> list[int]:
        """Entries left in 'sending' by a crash: the server may have them. At most once: they are
        marked 'uncertain' for a person, never sent again. Only the holder of the store's instance
        lock may do this: while it holds it, no other live process can have a send in flight."""
        if not lock.held:
            raise RuntimeError("recover_interrupted_sends needs the store's instance lock")
        with self.session() as s:
            rows = list(s.exec(select(OutboxEntry).where(OutboxEntry.state == "sending")))
            for e in rows:
                e.state = "uncertain"
                e.last_error = "interrupted during SMTP delivery; not resent (at most once)"
                s.add(e)
            return [e.id for e in rows]

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.exec(text("SELECT state, COUNT(*) FROM outbox GROUP BY state")).all()
            return {state: n for state, n in rows}


def case_ref(case: Case) -> str:
    return f"SME-{case.created_at.year}-{case.id:05d}"
