"""Keep as little as possible for as short a time as possible: N days (default 30) after a case
is closed or redirected, its raw messages (archive files), reply texts and the client's name,
masked CPR and CPR hash are removed; the metadata the invoicing report needs stays."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from sqlmodel import select

from intake import logs
from intake.config import Settings
from intake.store import Case, MessageRecord, OutboxEntry, Store, aware

log = logs.get("intake.retention")


@dataclass
class Purge:
    case_ref: str
    status: str
    since: str
    archive_files: int
    replies: int


def purge(settings: Settings, store: Store, now: dt.datetime, dry_run: bool = False) -> list[Purge]:
    cutoff = now - dt.timedelta(days=settings.security.retention_days)
    out: list[Purge] = []
    with store.session() as s:
        cases = s.exec(select(Case).where(Case.status.in_(("closed", "redirected")), Case.purged_at.is_(None)))
        for case in cases:
            ended = case.closed_at or case.updated_at
            if ended is None or aware(ended) > cutoff:
                continue
            recs = list(s.exec(select(MessageRecord).where(MessageRecord.case_id == case.id)))
            outs = list(s.exec(select(OutboxEntry).where(OutboxEntry.case_id == case.id, OutboxEntry.state != "pending")))
            files = [r for r in recs if r.archive_path]
            out.append(Purge(case.ref, case.status, aware(ended).date().isoformat(), len(files), len(outs)))
            if dry_run:
                continue
            for r in recs:
                if r.archive_path:
                    try:
                        os.unlink(r.archive_path)
                    except FileNotFoundError:
                        pass
                r.archive_path, r.purged_at = None, now
                s.add(r)
            for o in outs:
                o.raw = b""
                s.add(o)
            case.client_name = case.cpr_masked = case.cpr_hmac = None
            case.purged_at = now
            s.add(case)
    if out and not dry_run:
        log.info("retention_purged", cases=[p.case_ref for p in out])
    return out
