"""Deadlines that must not be forgotten: reminders, closing unanswered cases, the daily digest.

`Scheduler.run(now)` looks at the store and puts what is due in the outbox, each under a
dedupe key (`reminder:<case>`, `closed:<case>`, `digest:<date>`), so every mail is sent at most
once however often it runs and across restarts. The daemon runs it every minute; `intake remind
--now …` runs it once (cron, catching up, tests with a clock of their own).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlmodel import select

from intake.service import logs, outbox_admin
from intake.config import Settings
from intake.edges.outbox import enqueue
from intake.core.replies import Reply, render
from intake.edges.retention import purge
from intake.edges.store import Case, MessageRecord, OutboxEntry, Store, aware
from intake.core.workdays import Calendar

log = logs.get("intake.service.scheduler")


class Scheduler:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.cfg = settings.cases
        self.calendar = Calendar(self.cfg.extra_closed_days)
        self.tz = ZoneInfo(self.cfg.timezone)

    def local(self, when: dt.datetime) -> dt.date:
        return aware(when).astimezone(self.tz).date()

    def age(self, since: dt.datetime, today: dt.date) -> int:
        return self.calendar.between(self.local(since), today)

    def run(self, now: dt.datetime) -> dict[str, int]:
        today = self.local(now)
        done = {"reminders": 0, "closed": 0, "digests": 0}
        with self.store.session() as s:
            cases = s.exec(select(Case).where(Case.status == "incomplete", Case.waiting_since.is_not(None)))
            for case in cases:
                age = self.age(case.waiting_since, today)
                if age >= self.cfg.close_after_working_days:
                    self._close(s, case, now)
                    done["closed"] += 1
                elif age >= self.cfg.reminder_after_working_days and case.reminded_at is None:
                    close_date = self.calendar.add(self.local(case.waiting_since), self.cfg.close_after_working_days)
                    self._mail(s, case, "reminder", f"reminder:{case.id}", close_date=_dk(close_date))
                    case.reminded_at = now
                    s.add(case)
                    done["reminders"] += 1
            if self._digest_due(s, now, today):
                self._digest(s, now, today)
                done["digests"] += 1
        done["purged"] = len(purge(self.settings, self.store, now))
        if any(done.values()):
            log.info("scheduler_run", **done, today=today.isoformat())
        return done

    # --- cases -------------------------------------------------------------------------------
    def _close(self, s, case: Case, now: dt.datetime) -> None:  # noqa: ANN001
        case.status, case.closed_at, case.close_reason, case.updated_at = "closed", now, "unanswered", now
        s.add(case)
        self._mail(s, case, "closed_unanswered", f"closed:{case.id}")
        if self.cfg.staff_address:
            body = (f"Sag {case.ref} ({case.municipality or 'ukendt kommune'}) er lukket, fordi de manglende "
                    f"oplysninger ({_missing_text(case.missing)}) ikke kom inden for "
                    f"{self.cfg.close_after_working_days} arbejdsdage. Kommunen har fået besked.\n")
            enqueue(self.store, s, self.settings, Reply("staff_notice", self.cfg.staff_address,
                                   f"Sag lukket uden svar: {case.ref}", body), f"closed-staff:{case.id}", case.id)

    def _mail(self, s, case: Case, kind: str, dedupe: str, **extra) -> None:  # noqa: ANN001
        if not case.sender:
            return
        first = s.exec(select(MessageRecord).where(MessageRecord.case_id == case.id)
                       .order_by(MessageRecord.id)).first()
        ctx = {"case_ref": case.ref, "name": case.client_name, "cpr": case.cpr_masked,
               "missing": [m for m in case.missing.split(",") if m], "missing_text": _missing_text(case.missing),
               "created": _dk(self.local(case.created_at)), "unit_name": self.settings.triage.unit_name,
               "from_address": self.settings.reply_from, **extra}
        subject, body = render(kind, ctx, self.settings.triage.templates_dir)
        mid = first.message_id if first else None
        enqueue(self.store, s, self.settings, Reply(kind, case.sender, subject, body, in_reply_to=mid,
                               references=[mid] if mid else []), dedupe, case.id)

    # --- digest ------------------------------------------------------------------------------
    def _digest_due(self, s, now: dt.datetime, today: dt.date) -> bool:  # noqa: ANN001
        if not self.cfg.staff_address or not self.calendar.is_working_day(today):
            return False
        if aware(now).astimezone(self.tz).hour < self.cfg.digest_hour:
            return False
        return not self.store.reply_exists(s, f"digest:{today.isoformat()}")

    def digest_context(self, s, now: dt.datetime, today: dt.date) -> dict:  # noqa: ANN001
        last = s.exec(select(OutboxEntry.created_at).where(OutboxEntry.kind == "digest")
                      .order_by(OutboxEntry.created_at.desc())).first()
        since = aware(last) if last else aware(now) - dt.timedelta(days=1)
        cases = list(s.exec(select(Case).order_by(Case.id)))

        def row(c: Case) -> dict:
            return {"ref": c.ref, "status": c.status, "municipality": c.municipality,
                    "examinations": c.examinations.replace(",", ", "),
                    "missing": c.missing.replace(",", ", "), "reminded": c.reminded_at is not None,
                    "age": self.age(c.waiting_since or c.created_at, today),
                    "due": _dk(c.due_date) if c.due_date else "-",
                    "late": self.calendar.between(c.due_date, today) if c.due_date else 0}

        return {
            "date": _dk(today),
            "new": [row(c) for c in cases if aware(c.created_at) > since],
            "complete": [row(c) for c in cases if c.accepted_at and aware(c.accepted_at) > since],
            "incomplete": [row(c) for c in cases if c.status == "incomplete"],
            "overdue": [row(c) for c in cases if c.status == "accepted" and c.due_date and c.due_date < today],
            "closed": [row(c) for c in cases if c.closed_at and aware(c.closed_at) > since
                       and c.close_reason == "unanswered"],
            "outbox_attention": outbox_admin.digest_rows(s, self.tz),  # uncertain or failed replies
        }

    def _digest(self, s, now: dt.datetime, today: dt.date) -> None:  # noqa: ANN001
        ctx = self.digest_context(s, now, today)
        subject, body = render("digest", ctx, self.settings.triage.templates_dir)
        enqueue(self.store, s, self.settings, Reply("digest", self.cfg.staff_address, subject, body),
                      f"digest:{today.isoformat()}", None)


_MISSING_DA = {"name": "navn", "cpr": "CPR-nummer", "examination": "ønsket undersøgelse",
               "problem": "problemstilling", "attachments": "sagsakter"}


def _missing_text(missing: str) -> str:
    return ", ".join(_MISSING_DA.get(m, m) for m in missing.split(",") if m) or "-"


def _dk(d: dt.date) -> str:
    return d.strftime("%d.%m.%Y")
