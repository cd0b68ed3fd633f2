"""Keep as little as possible for as short a time as possible. Every message record is covered,
each decision with its own period (`[security] retention_days_by_decision`, default
`retention_days` = 30, ignored machine mail 7):

- a case (accepted, incomplete, redirect): N days after it was closed or redirected (an open
  case keeps everything), its raw messages (archive files), reply texts and the client's name,
  masked CPR and CPR hash are removed; the metadata the invoicing report needs stays. The
  case's decision (accepted if it ever was, else redirect or incomplete) sets N for all of it;
- a message with no case (manual, ignored): N days after it was filed, its archive file and any
  reply text, and the sender's address (it may be a private person's);
- a message that joined a case after the case was purged: N days after it was filed.

An archive file another, still kept record points at (the same bytes requeued and decided
again) is left in place.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from intake.service import logs
from intake.config import DECISIONS, Settings
from intake.edges.store import Case, MessageRecord, OutboxEntry, Store, aware

log = logs.get("intake.edges.retention")

_CHUNK = 500  # bound parameters per IN (...) query


@dataclass
class Purge:
    decision: str  # the decision whose retention period ran out
    case_ref: str | None  # None: a message with no case
    status: str  # the case's status, or the message's decision
    since: str  # the day the period started (closed, redirected, filed)
    messages: int
    archive_files: int
    replies: int


def case_decision(case: Case) -> str:
    """The decision a case's retention follows."""
    if case.accepted_at is not None:
        return "accepted"
    if case.status == "redirected" or case.redirect_reason:
        return "redirect"
    return "incomplete"


def _filed(rec: MessageRecord) -> dt.datetime:
    return aware(rec.filed_at or rec.received_at)


def purge(settings: Settings, store: Store, now: dt.datetime, dry_run: bool = False) -> list[Purge]:
    sec = settings.security
    now = aware(now)
    days = {d: dt.timedelta(days=sec.retention_for(d)) for d in DECISIONS}
    out: list[Purge] = []
    with store.session() as s:
        recs: list[MessageRecord] = []
        outs: list[OutboxEntry] = []
        cases: list[Case] = []

        # 1. cases closed or redirected longer ago than their decision's period: all of them
        for case in s.exec(select(Case).where(Case.status.in_(("closed", "redirected")),
                                              Case.purged_at.is_(None))):
            decision = case_decision(case)
            ended = aware(case.closed_at or case.updated_at)
            if ended + days[decision] > now:
                continue
            c_recs = list(s.exec(select(MessageRecord).where(MessageRecord.case_id == case.id,
                                                             MessageRecord.purged_at.is_(None))))
            c_outs = list(s.exec(select(OutboxEntry).where(OutboxEntry.case_id == case.id,
                                                           OutboxEntry.state != "pending")))
            out.append(Purge(decision, case.ref, case.status, ended.date().isoformat(), len(c_recs),
                             sum(1 for r in c_recs if r.archive_path), len(c_outs)))
            cases.append(case)
            recs += c_recs
            outs += c_outs

        # 2. messages with no case, filed longer ago than their decision's period
        loose: list[tuple[MessageRecord, str, str, str | None]] = []  # record, decision, status, ref
        filed = func.coalesce(MessageRecord.filed_at, MessageRecord.received_at)
        for decision in DECISIONS:
            for rec in s.exec(select(MessageRecord).where(
                    MessageRecord.case_id.is_(None), MessageRecord.decision == decision,
                    MessageRecord.purged_at.is_(None), filed <= now - days[decision])):
                if _filed(rec) + days[decision] <= now:
                    loose.append((rec, decision, rec.decision, None))

        # 3. messages that joined a case after it was purged (a late follow-up)
        for rec, case in s.exec(select(MessageRecord, Case).join(Case, MessageRecord.case_id == Case.id)
                                .where(Case.purged_at.is_not(None), MessageRecord.purged_at.is_(None))):
            decision = case_decision(case)
            if _filed(rec) + days[decision] <= now:
                loose.append((rec, decision, case.status, case.ref))

        replies: dict[int, list[OutboxEntry]] = {}
        ids = [rec.id for rec, *_ in loose]
        for i in range(0, len(ids), _CHUNK):
            for o in s.exec(select(OutboxEntry).where(OutboxEntry.message_record_id.in_(ids[i:i + _CHUNK]),
                                                      OutboxEntry.state != "pending")):
                replies.setdefault(o.message_record_id, []).append(o)
        for rec, decision, status, ref in loose:
            r_outs = replies.get(rec.id, [])
            out.append(Purge(decision, ref, status, _filed(rec).date().isoformat(), 1,
                             int(bool(rec.archive_path)), len(r_outs)))
            recs.append(rec)
            outs += r_outs

        if not dry_run and out:
            _remove(s, now, cases, recs, outs)
    if out and not dry_run:
        log.info("retention_purged", cases=[c.ref for c in cases],
                 messages=dict(Counter(p.decision for p in out for _ in range(p.messages))))
    return out


def _remove(s: Session, now: dt.datetime, cases: list[Case], recs: list[MessageRecord],
            outs: list[OutboxEntry]) -> None:
    ids = {r.id for r in recs}
    paths = sorted({r.archive_path for r in recs if r.archive_path})
    shared: set[str] = set()  # still named by a record that stays
    for i in range(0, len(paths), _CHUNK):
        for rid, path in s.exec(select(MessageRecord.id, MessageRecord.archive_path).where(
                MessageRecord.archive_path.in_(paths[i:i + _CHUNK]), MessageRecord.purged_at.is_(None))):
            if rid not in ids:
                shared.add(path)
    for path in paths:
        if path in shared:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for r in recs:
        r.archive_path, r.purged_at, r.evidence = None, now, None
        if r.case_id is None:
            r.sender = None
        s.add(r)
    for o in outs:
        o.raw = b""
        s.add(o)
    for case in cases:
        case.client_name = case.cpr_masked = case.cpr_hmac = None
        case.purged_at = now
        s.add(case)
