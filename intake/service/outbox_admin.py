"""Outbox entries that need a person: list the uncertain (maybe sent, maybe not) and failed
replies, and resolve one by hand, audited: `--sent` (it did go) or `--resend` (back to pending,
for the daemon to send). The daemon never resends an uncertain entry on its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, select

from intake.service import logs
from intake.edges.store import AuditEvent, Case, OutboxEntry, Store, aware, utcnow

ATTENTION = ("uncertain", "failed")  # states only a person moves on
STATES = {"attention": ATTENTION, "uncertain": ("uncertain",), "failed": ("failed",), "pending": ("pending", "sending"),
          "all": ("pending", "sending", "sent", "uncertain", "failed")}
STATE_DA = {"uncertain": "usikker", "failed": "fejlet", "pending": "venter", "sending": "sendes",
            "sent": "sendt"}


@dataclass
class Row:
    id: int
    state: str
    kind: str
    to: str
    case_ref: str | None
    since: dt.datetime
    attempts: int
    last_error: str | None


def rows(s: Session, states: tuple[str, ...] = ATTENTION) -> list[Row]:
    """Entries in `states`, oldest first, with their case reference (no reply contents)."""
    q = (select(OutboxEntry.id, OutboxEntry.state, OutboxEntry.kind, OutboxEntry.to_addr, Case.ref,
                OutboxEntry.created_at, OutboxEntry.attempts, OutboxEntry.last_error)
         .join(Case, Case.id == OutboxEntry.case_id, isouter=True)
         .where(OutboxEntry.state.in_(states)).order_by(OutboxEntry.id))
    return [Row(i, st, k, to, ref, aware(at), n, err) for i, st, k, to, ref, at, n, err in s.exec(q)]


def digest_rows(s: Session, tz: ZoneInfo) -> list[dict]:
    """The uncertain and failed replies, for the staff digest."""
    return [{"id": r.id, "state": STATE_DA[r.state], "kind": r.kind, "to": r.to, "case_ref": r.case_ref or "-",
             "since": r.since.astimezone(tz).strftime("%d.%m.%Y %H:%M")} for r in rows(s)]


def table(store: Store, which: str, tz: ZoneInfo) -> str:
    from intake.service.staff import _table

    with store.session() as s:
        found = rows(s, STATES[which])
    out = [[str(r.id), STATE_DA.get(r.state, r.state), r.kind, r.to, r.case_ref or "-",
            r.since.astimezone(tz).strftime("%d.%m.%Y %H:%M"), str(r.attempts), (r.last_error or "-")[:60]]
           for r in found]
    text = _table(out, ["ID", "TILSTAND", "SLAGS", "MODTAGER", "SAG", "OPRETTET", "FORSØG", "SENESTE FEJL"])
    return text + f"\n{len(out)} svar"


class ResolveError(Exception):
    """The entry does not exist, or is not in a state a person may resolve."""


def resolve(store: Store, entry_id: int, how: str, actor: str, now: dt.datetime | None = None) -> OutboxEntry:
    """`how` = "sent": it went (sent_at = now); "resend": back to pending, due now, attempts reset.
    One transaction: the state change (only from uncertain or failed) and its audit event."""
    if how not in ("sent", "resend"):
        raise ValueError(how)
    now = now or utcnow()
    with store.session() as s:
        entry = s.get(OutboxEntry, entry_id)
        if entry is None:
            raise ResolveError(f"no outbox entry {entry_id}")
        if entry.state not in ATTENTION:
            raise ResolveError(f"outbox entry {entry_id} is {entry.state}; only uncertain or failed "
                               "entries can be resolved")
        changes = ({"state": "sent", "sent_at": now} if how == "sent"
                   else {"state": "pending", "next_attempt_at": now, "attempts": 0, "last_error": None})
        done = s.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id, OutboxEntry.state == entry.state)
                      .values(**changes)).rowcount
        if done != 1:
            raise ResolveError(f"outbox entry {entry_id} changed meanwhile; try again")
        ref = s.get(Case, entry.case_id).ref if entry.case_id else None
        s.add(AuditEvent(actor=actor, action="outbox_resolve", case_ref=ref,
                         detail=f"{how} #{entry_id} (was {entry.state})"))
        was = entry.state
    logs.get("intake.audit").info("audit", actor=actor, action="outbox_resolve", case=ref,
                                  outbox_id=entry_id, how=how, was=was)
    with store.session() as s:
        return s.get(OutboxEntry, entry_id)
