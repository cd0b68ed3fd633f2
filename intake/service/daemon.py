"""`intake run`: watch the mailbox, triage each message once, file it, answer it at most once.

Crash-safe order (Mailman's switchboard, not Zammad's delete-first): a message stays in the
inbox until the store holds it, its decision, its case and its reply in one transaction; only
then is it moved to its triage folder. A restart resumes every step: a message found in the
store by content hash is filed without being triaged or answered again; one found by Message-ID
(a resend) is triaged but not answered again. Replies leave through the outbox (intake.edges.outbox).

The IMAP side is blocking (imapclient) and runs in a worker thread; the outbox runs on the
event loop. SIGTERM/SIGINT: the message in hand is finished, then both stop and we exit 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from zoneinfo import ZoneInfo

from sqlmodel import select

from intake.service import failpoints, logs
from intake.core import followup
from intake.edges.archive import Archive
from intake.config import ConfigError, Settings, load_settings
from intake.core.cpr import keyed_hash
from intake.edges.hmackey import load_hmac_key
from intake.edges.instance_lock import acquire as acquire_lock
from intake.core.mimeparse import Parsed
from intake.edges.imapconn import CONNECTION_ERRORS, Mailbox, NewMessage, is_throttled
from intake.edges.oauth import AuthFailure, AuthWatch, check_secrets
from intake.edges.outbox import Outbox, enqueue
from intake.core.rules import Rules, load_rules
from intake.service.scheduler import Scheduler
from intake.service import metrics
from intake.service.monitor import Monitor
from intake.edges.store import Case, MessageRecord, OutboxEntry, Store, case_ref, utcnow
from intake.core.triage import REPLY_KIND, Result, build_reply
from intake.edges.worker import TriagePool
from intake.core.workdays import Calendar

log = logs.get("intake.service.daemon")

CASE_STATUS = {"accepted": "accepted", "incomplete": "incomplete", "redirect": "redirected"}
# manual reasons settled before the message could be read as a follow-up (a message that fails
# sender authentication or the signature checks must not add to a case or get an answer either)
NOT_A_FOLLOWUP = frozenset({"sender_not_allowed", "empty", "unreadable", "header_too_large",
                            "too_complex", "malformed_mime", "internal_error",
                            "authentication_failed", "sender_ambiguous", "undecryptable", "bad_signature",
                            "signature_required", "wrong_signer"})


def reason_subfolders(settings: Settings, mb: Mailbox) -> bool:
    """File manual messages in per-reason subfolders? "auto": only when staff would not see the
    reason as a keyword (the server takes none, as Exchange, or set_keywords is off)."""
    mode = settings.daemon.reason_subfolders
    if mode == "auto":
        return not (settings.daemon.set_keywords and mb.keywords_allowed)
    return mode == "always"


def local_date(when: dt.datetime, tz: str) -> dt.date:
    return when.astimezone(ZoneInfo(tz)).date()


def _keywords(result: Result) -> list[str]:
    kw = [f"sme-{result.decision}"]
    reason = result.reason
    if reason:
        kw.append(f"grund-{reason}")
    kw += [f"mangler-{m}" for m in result.missing]
    if result.manual_reason == "uncertain":  # which items a person must find: "usikker-cpr"
        fields = {f for e in result.evidence.get("decision", []) for f in str(e.get("field", "")).split(",") if f}
        kw += [f"usikker-{f}" for f in ("name", "cpr", "examination", "problem", "attachments") if f in fields]
    return kw


@dataclass
class Plan:
    """What to do with one fetched message once the batch transaction has committed."""
    uid: int
    message_id: str | None
    record_id: int
    target: str
    keywords: list[str]
    maybe_filed: bool = False  # decided before a crash: it may already sit in its folder


class Processor:
    """Triage, record and file a batch of messages: one transaction for the batch, then the
    IMAP side (keywords, MOVE per target folder), then one commit marking them filed."""

    def __init__(self, settings: Settings, store: Store, rules: Rules, hmac_key: bytes) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.hmac_key = hmac_key
        self.calendar = Calendar(settings.cases.extra_closed_days)
        self.pool = TriagePool(settings)  # worker processes with time and memory limits
        self.triage = self.pool.triage
        self.prefetched: dict[int, tuple] = {}  # uid -> triage result of the batch in hand
        sec = settings.security
        self.archive = Archive(sec.archive_key_file, sec.archive_dir) if sec.archive_key_file and sec.archive_dir else None

    def _annotate(self, s, rec: MessageRecord, result: Result, raw: bytes | None, content_hash: str) -> None:  # noqa: ANN001
        """Security verdicts with the message, and its raw bytes encrypted to the archive key."""
        rec.encryption, rec.signature_verdict, rec.signer = result.encryption, result.signature_verdict, result.signer
        rec.evidence = json.dumps(result.evidence_out(), ensure_ascii=False)
        if self.archive is not None and raw is not None:
            rec.archive_path = str(self.archive.store(content_hash, raw))
        s.add(rec)

    def handle_batch(self, mb: Mailbox, batch: list[NewMessage]) -> int:
        limit = mb.cfg.max_message_bytes
        bodies = mb.fetch_many([nm.uid for nm in batch if nm.size <= limit])
        uids = [nm.uid for nm in batch if nm.uid in bodies]
        # the batch is triaged side by side in the worker processes before the transaction
        self.prefetched = dict(zip(uids, self.pool.triage_many([bodies[u] for u in uids], render_reply=False)))
        plans: list[Plan] = []
        with self.store.session() as s:
            for nm in batch:
                if nm.size <= limit and nm.uid not in bodies:
                    continue  # expunged by someone else meanwhile
                plans.append(self._decide(s, mb, nm, bodies.get(nm.uid)))
            failpoints.hit("before_commit")
        failpoints.hit("after_commit")
        if self.settings.daemon.set_keywords:
            by_keywords: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for plan in plans:
                by_keywords[tuple(plan.keywords)].append(plan.uid)
            for kws, uids in by_keywords.items():
                mb.set_keywords(uids, list(kws))
        by_folder: dict[str, list[Plan]] = defaultdict(list)
        for plan in plans:
            by_folder[plan.target].append(plan)
        mb.ensure_folders(list(by_folder))  # reason subfolders appear when first needed
        for folder, group in by_folder.items():
            mb.file([p.uid for p in group], folder,
                    [p.message_id if p.maybe_filed else None for p in group])
            failpoints.hit("after_move")
        if batch:
            self.store.mark_filed([p.record_id for p in plans], mb.cfg.folder, mb.uidvalidity,
                                  max(nm.uid for nm in batch))
        for plan in plans:
            log.info("message_filed", uid=plan.uid, record_id=plan.record_id, folder=plan.target)
        return len(plans)

    def _decide(self, s, mb: Mailbox, nm: NewMessage, raw: bytes | None) -> Plan:  # noqa: ANN001
        t0 = time.monotonic()
        content_hash = (hashlib.sha256(raw).hexdigest() if raw is not None
                        else f"unfetched:{nm.message_id or nm.uid}:{nm.size}")
        rec = self.store.find_message(s, content_hash)
        if rec is not None:  # decided before: a crash before filing, or a new UIDVALIDITY
            log.info("message_resumed", uid=nm.uid, record_id=rec.id, decision=rec.decision)
            kws = [f"sme-{rec.decision}"] + ([f"grund-{rec.reason}"] if rec.reason else [])
            kws += [f"mangler-{m}" for m in rec.missing.split(",") if m]
            return Plan(nm.uid, nm.message_id, rec.id, rec.target_folder, kws,
                        maybe_filed=rec.state != "filed")
        parsed = None
        if raw is None:
            result = Result(decision="manual", manual_reason="too_large", message_id=nm.message_id)
        else:
            result, parsed = self.prefetched.pop(nm.uid, None) or self.triage(raw, render_reply=False)
            if result.decision != "ignored" and result.manual_reason not in NOT_A_FOLLOWUP:
                case = self._case_for(s, parsed)
                if case is not None:
                    return self._followup(s, mb, nm, raw, content_hash, case, t0)
        if (result.decision in REPLY_KIND and result.reply_to
                and self._over_limit(s, result.reply_to)):
            result.decision, result.manual_reason, result.missing = "manual", "reply_limit", []
        target = self._target(mb, result.decision, result.reason)
        rec, case, outbox_id = self._record(s, mb, nm, parsed, content_hash, result, target)
        self._annotate(s, rec, result, raw, content_hash)
        record_id = rec.id
        log.info("message_triaged", uid=nm.uid, record_id=record_id, decision=result.decision,
                 reason=result.reason,
                 missing=result.missing, examinations=result.examinations,
                 case=case, outbox_id=outbox_id, attachments=len(result.attachments),
                 size=nm.size, ms=round((time.monotonic() - t0) * 1000, 1),
                 **({"error": result.error} if result.error else {}))
        metrics.message_decided(result.decision, result.reason)
        return Plan(nm.uid, nm.message_id, record_id, target, _keywords(result))

    # --- follow-ups --------------------------------------------------------------------------
    def _case_for(self, s, parsed: Parsed) -> Case | None:  # noqa: ANN001
        """The case this message follows up: a reference in the subject, or a thread link to
        a message of the case (theirs or our reply)."""
        for ref in followup.refs_in(parsed.subject):
            case = s.exec(select(Case).where(Case.ref == ref)).first()
            if case is not None:
                return case
        ids = parsed.references
        if not ids:
            return None
        case_id = s.exec(select(OutboxEntry.case_id).where(
            OutboxEntry.reply_message_id.in_(ids), OutboxEntry.case_id.is_not(None))).first()
        if case_id is None:
            case_id = s.exec(select(MessageRecord.case_id).where(
                MessageRecord.message_id.in_(ids), MessageRecord.case_id.is_not(None))).first()
        return s.get(Case, case_id) if case_id is not None else None

    def _followup(self, s, mb: Mailbox, nm: NewMessage, raw: bytes, content_hash: str,  # noqa: ANN001
                  case: Case, t0: float) -> Plan:
        bodies = []
        for entry_raw in s.exec(select(OutboxEntry.raw).where(OutboxEntry.case_id == case.id)):
            try:
                bodies.append(message_from_bytes(entry_raw, policy=email_policy.default).get_content())
            except Exception:
                pass
        result, parsed = self.triage(raw, render_reply=False, ignore_lines=followup.reply_lines(bodies))
        new_hmac = keyed_hash(result.cpr_digits, self.hmac_key) if result.cpr_digits else None
        state = followup.CaseState(case.status, case.client_name, case.cpr_hmac, case.cpr_masked,
                                   [e for e in case.examinations.split(",") if e], case.has_problem,
                                   case.attachments)
        m = followup.merge(state, result, new_hmac)
        if m.decision != "manual" and result.municipality != case.municipality:
            m = followup.Merge("manual", "followup_other_municipality", answer=False)
        if m.answer and result.reply_to and self._over_limit(s, result.reply_to):
            m = followup.Merge("manual", "reply_limit", answer=False)
        target = self._target(mb, m.decision, m.manual_reason)
        now = utcnow()
        if m.decision != "manual":
            became_accepted = case.status == "incomplete" and m.decision == "accepted"
            case.client_name, case.cpr_hmac, case.cpr_masked = m.client_name, m.cpr_hmac, m.cpr_masked
            case.examinations = ",".join(m.examinations)
            case.has_problem, case.attachments, case.missing = m.has_problem, m.attachments, ",".join(m.missing)
            case.status, case.updated_at = m.decision, now
            if became_accepted:
                self._accept(case, now)
            elif m.decision == "incomplete" and m.answer:
                case.waiting_since = now
            s.add(case)
            # the case's earlier messages join this one in its folder
            for rec in s.exec(select(MessageRecord).where(MessageRecord.case_id == case.id,
                                                          MessageRecord.state == "filed",
                                                          MessageRecord.filed_folder != target)):
                rec.state, rec.target_folder = "refile", target
                s.add(rec)
        rec = MessageRecord(
            message_id=result.message_id or nm.message_id, content_hash=content_hash,
            folder=mb.cfg.folder, uidvalidity=mb.uidvalidity, uid=nm.uid, size=nm.size,
            decision=m.decision, reason=m.manual_reason, missing=",".join(m.missing),
            examinations=",".join(m.examinations), attachments=len(result.attachments),
            sender=result.sender, municipality=result.municipality, target_folder=target,
            case_id=case.id, followup=True)
        s.add(rec)
        s.flush()
        self._annotate(s, rec, result, raw, content_hash)
        outbox_id = None
        if m.answer and m.decision in REPLY_KIND:
            merged = Result(decision=m.decision, missing=m.missing, examinations=m.examinations,
                            name=m.client_name, known_cpr=m.cpr_masked, reply_to=result.reply_to,
                            message_id=result.message_id)
            reply = build_reply(merged, parsed, self.settings, self.rules, case_ref=case.ref,
                                attachment_count=m.attachments)
            outbox_id = enqueue(self.store, s, self.settings, reply, f"reply:{result.message_id or content_hash}", rec.id, case.id)
        kws = [f"sme-{m.decision}", "opfoelgning"] + ([f"grund-{m.manual_reason}"] if m.manual_reason else [])
        kws += [f"mangler-{x}" for x in m.missing]
        log.info("followup_merged", uid=nm.uid, record_id=rec.id, case=case.ref, decision=m.decision,
                 reason=m.manual_reason, missing=m.missing, outbox_id=outbox_id,
                 ms=round((time.monotonic() - t0) * 1000, 1))
        metrics.message_decided(m.decision, m.manual_reason)
        return Plan(nm.uid, nm.message_id, rec.id, target, kws)

    def _target(self, mb: Mailbox, decision: str, reason: str | None) -> str:
        """The decision's folder; for manual, a subfolder per reason when so configured
        (`daemon.reason_subfolders`; "auto": when the reason cannot go on as a keyword)."""
        folder = self.settings.folders.for_decision(decision)
        if decision == "manual" and reason and reason_subfolders(self.settings, mb):
            folder = f"{folder}/{reason}"
        return folder

    def _accept(self, case: Case, now) -> None:  # noqa: ANN001
        case.accepted_at = now
        case.due_date = self.calendar.add(local_date(now, self.settings.cases.timezone),
                                          self.settings.cases.response_working_days)

    def _over_limit(self, s, addr: str) -> bool:  # noqa: ANN001
        lim = self.settings.reply_limits
        now = utcnow()
        short, day = self.store.replies_to(s, addr, [now - dt.timedelta(minutes=10), now - dt.timedelta(days=1)])
        return short >= lim.per_recipient_per_10_minutes or day >= lim.per_recipient_per_day

    def refile(self, mb: Mailbox) -> None:
        """Move earlier messages of a case to the folder its latest decision chose."""
        folders = self.settings.folders
        decision_of = {getattr(folders, d): d for d in ("accepted", "incomplete", "redirect", "manual", "ignored")}
        for rec in self.store.pending_refiles():
            src, dst = rec.filed_folder, rec.target_folder
            old = [f"sme-{rec.decision}"] + [f"mangler-{m}" for m in rec.missing.split(",") if m]
            new = [f"sme-{decision_of.get(dst, 'manual')}"]
            moved = bool(src and src != dst and rec.message_id
                         and mb.move_by_message_id(src, rec.message_id, dst, add=new, remove=old))
            self.store.refiled(rec.id, dst if (moved or src == dst) else src)
            log.info("message_refiled", record_id=rec.id, folder=dst if moved else src, moved=moved)

    def _record(self, s, mb: Mailbox, nm: NewMessage, parsed: Parsed | None, content_hash: str,  # noqa: ANN001
                result: Result, target: str) -> tuple[MessageRecord, str | None, int | None]:
        """Message, case and outbox entry, in the caller's transaction."""
        rec = MessageRecord(
            message_id=result.message_id or nm.message_id, content_hash=content_hash,
            folder=mb.cfg.folder, uidvalidity=mb.uidvalidity, uid=nm.uid, size=nm.size,
            decision=result.decision,
            reason=result.reason,
            missing=",".join(result.missing), examinations=",".join(result.examinations),
            attachments=len(result.attachments), sender=result.sender,
            municipality=result.municipality, target_folder=target)
        s.add(rec)
        s.flush()
        case = None
        if result.decision in CASE_STATUS:
            case = Case(status=CASE_STATUS[result.decision], municipality=result.municipality,
                        sender=result.sender, client_name=result.name, cpr_masked=result.cpr,
                        cpr_hmac=keyed_hash(result.cpr_digits, self.hmac_key) if result.cpr_digits else None,
                        examinations=rec.examinations, missing=rec.missing,
                        redirect_reason=result.redirect_reason, has_problem=bool(result.problem),
                        attachments=len(result.attachments))
            now = utcnow()
            if result.decision == "accepted":
                self._accept(case, now)
            elif result.decision == "incomplete":
                case.waiting_since = now
            s.add(case)
            s.flush()
            case.ref = case_ref(case)
            rec.case_id = case.id
            s.add(case)
            s.add(rec)
        outbox_id = None
        if parsed is not None:
            reply = build_reply(result, parsed, self.settings, self.rules,
                                case_ref=case.ref if case else None)
            outbox_id = enqueue(self.store, s, self.settings, reply, f"reply:{result.message_id or content_hash}",
                                      rec.id, case.id if case else None)
        return rec, (case.ref if case else None), outbox_id


class ImapWorker:
    """The blocking side: connect, drain the inbox, wait (IDLE or poll), reconnect on failure."""

    def __init__(self, settings: Settings, store: Store, processor: Processor,
                 notify, stop: threading.Event, prefer_move: bool = True,  # noqa: ANN001
                 monitor: Monitor | None = None) -> None:
        self.settings = settings
        self.cfg = settings.mailbox
        self.store = store
        self.processor = processor
        self.notify = notify
        # systemd, metrics, health file; the watchdog is pinged from this worker only
        self.monitor = monitor if monitor is not None else Monitor.inert(settings, store)
        self.stop = stop
        self.prefer_move = prefer_move
        self.early_stop: list[str] = []  # signals received before the event loop ran (cli)
        self.processed = 0
        self.auth = AuthWatch("imap")  # sign-in failures: logged once; .last_error for health

    @property
    def last_auth_error(self) -> str | None:
        """The server's (or the token endpoint's) text of the latest failed sign-in, None once
        signed in again."""
        return self.auth.last_error

    def folders(self) -> list[str]:
        f = self.settings.folders
        return [f.accepted, f.incomplete, f.redirect, f.manual, f.ignored]

    def run(self, once: bool) -> bool:
        """Returns True when the work finished normally (stop requested, or --once drained)."""
        d = self.settings.daemon
        delay = d.reconnect_initial_seconds
        while not self.stop.is_set():
            mb = Mailbox(self.cfg, self.prefer_move)
            try:
                mb.connect()
                mb.ensure_folders(self.folders())
                mb.select()
                log.info("imap_connected", host=self.cfg.host, folder=self.cfg.folder,
                         idle=mb.has_idle and self.cfg.idle, uidvalidity=mb.uidvalidity)
                self.monitor.connected()  # store open, mailbox selected: READY=1 (the first time)
                self.auth.ok()
                self._note_server(mb)
                while not self.stop.is_set():
                    self.drain(mb)
                    self.monitor.synced()
                    delay = self._healthy(d)  # reset only after work got done: no spin
                    if once:
                        return True
                    wait = self.cfg.idle_renew_seconds if (mb.has_idle and self.cfg.idle) else self.cfg.poll_seconds
                    if mb.renew_at is not None:  # OAuth: sign in again before the token expires
                        if mb.renew_at <= time.monotonic():
                            log.info("imap_token_renewal", note="signing in again with a new token")
                            break
                        wait = min(wait, mb.renew_at - time.monotonic())
                    mb.wait(wait, self.stop, tick=self.monitor.wait_tick)  # pings the watchdog
            except AuthFailure as e:  # logged once per streak; retried with capped backoff
                self.auth.failed(e, delay)
                self.monitor.imap_error(e, delay)
                if once:
                    return False
                self.monitor.sleep(self.stop, delay)
                delay = min(delay * 2, d.reconnect_max_seconds)
            except CONNECTION_ERRORS as e:
                delay = self._failed(e, delay, d)
                self.monitor.imap_error(e, delay)
                if once:
                    return False
                self.monitor.sleep(self.stop, delay)  # pings the watchdog while it waits
                delay = min(delay * 2, d.reconnect_max_seconds)
            finally:
                mb.close()
                self.monitor.disconnected()
        return True

    def _note_server(self, mb: Mailbox) -> None:
        """Say once (and again if it changes) how this server names folders, files and tags."""
        seen = (mb.prefix, mb.delimiter, b"MOVE" in mb.capabilities, b"UIDPLUS" in mb.capabilities,
                mb.keywords_allowed)
        if seen == getattr(self, "_server_seen", None):
            return
        self._server_seen = seen
        log.info("imap_server", prefix=mb.prefix, delimiter=mb.delimiter, move=seen[2], uidplus=seen[3],
                 keywords=mb.keywords_allowed)
        if not mb.keywords_allowed and self.settings.daemon.set_keywords:
            log.warning("imap_keywords_unsupported", folder=self.cfg.folder,
                        reason_subfolders=reason_subfolders(self.settings, mb),
                        note="no sme-/grund-/mangler- keywords on this server; the decision is in the store")

    def _failed(self, e: BaseException, delay: float, d) -> float:  # noqa: ANN001 - DaemonConfig
        """A connection problem or a refusal: logged once per episode (until work gets done
        again), retried after `delay`, longer when the server says it is throttling us."""
        throttled = is_throttled(e)
        if throttled:
            delay = min(max(delay, 4 * d.reconnect_initial_seconds), d.reconnect_max_seconds)
        ep = getattr(self, "_episode", None)
        if ep is None:
            self._episode = {"since": time.monotonic(), "attempts": 1, "throttled": throttled}
            log.warning("imap_error", error=type(e).__name__, throttled=throttled, retry_in_s=delay)
        else:
            ep["attempts"] += 1
            ep["throttled"] = ep["throttled"] or throttled
            log.debug("imap_error_again", error=type(e).__name__, throttled=throttled, retry_in_s=delay,
                      attempts=ep["attempts"])
        return delay

    def _healthy(self, d) -> float:  # noqa: ANN001 - DaemonConfig
        """Work got done: an episode of errors is over; the next one starts from the initial delay."""
        ep = getattr(self, "_episode", None)
        if ep is not None:
            self._episode = None
            log.info("imap_recovered", attempts=ep["attempts"], throttled=ep["throttled"],
                     seconds=round(time.monotonic() - ep["since"], 1))
        return d.reconnect_initial_seconds

    def drain(self, mb: Mailbox) -> None:
        folder = self.cfg.folder
        cp = self.store.checkpoint(folder)
        last = 0
        if cp is not None and cp.uidvalidity == mb.uidvalidity:
            last = cp.last_uid
        elif cp is not None:
            log.warning("uidvalidity_changed", folder=folder, old=cp.uidvalidity, new=mb.uidvalidity)
        batch: list[NewMessage] = []
        size = 0
        new = sorted(mb.new_messages(last), key=lambda m: m.uid)
        self.monitor.drain_started(len(new))
        for nm in new:
            if self.stop.is_set():
                break
            if batch and (len(batch) >= self.cfg.fetch_batch or size + nm.size > self.cfg.batch_bytes):
                self._process(mb, batch)
                batch, size = [], 0
            batch.append(nm)
            size += nm.size if nm.size <= self.cfg.max_message_bytes else 0
        if batch and not self.stop.is_set():
            self._process(mb, batch)

    def _process(self, mb: Mailbox, batch: list[NewMessage]) -> None:
        self.processed += self.processor.handle_batch(mb, batch)
        self.monitor.batch_done(len(batch))
        self.processor.refile(mb)
        self.notify()


class Daemon:
    def __init__(self, settings: Settings, prefer_move: bool = True, command: str = "intake run") -> None:
        if settings.mailbox is None or settings.smtp is None:
            raise ConfigError("intake run needs [mailbox] and [smtp] sections in the config")
        check_secrets(settings.mailbox)  # a missing or group/world-readable secret: refused now
        check_secrets(settings.smtp)
        self.settings = settings
        # one sender per store: StoreLocked (nothing touched) while another process holds it
        self.lock = acquire_lock(settings.store.url, command)
        self.lock_lost = False
        try:
            self.store = Store(settings.store.url)
            # takes $NOTIFY_SOCKET and $WATCHDOG_* before any child process could inherit them
            self.monitor = Monitor(settings, self.store)
            self.rules = load_rules(settings.triage.rules_file)
            self.processor = Processor(settings, self.store, self.rules, load_hmac_key(settings))
            self.processor.pool.on_done = self.monitor.triaged  # triage histogram; progress pings
            self.outbox = Outbox(self.store, settings.smtp, settings.outbox)
            self.scheduler = Scheduler(settings, self.store)
        except BaseException:
            self.lock.release()
            raise
        self.prefer_move = prefer_move
        self.thread_stop = threading.Event()

    def close(self) -> None:
        """Stop the triage workers and give the store back (the lock goes with the process anyway)."""
        self.processor.pool.close()
        self.lock.release()

    async def run(self, once: bool = False) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def request_stop(signame: str) -> None:
            log.info("stop_requested", signal=signame)
            self.monitor.stop_requested()  # STOPPING=1
            self.thread_stop.set()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, request_stop, sig.name)
            except (NotImplementedError, RuntimeError):
                pass
        if self.early_stop:  # asked to stop while we were still loading
            request_stop(self.early_stop[0])
        for s in (self.settings.mailbox, self.settings.smtp):
            if s.security == "plain":
                log.warning("plaintext_connection", host=s.host, port=s.port,
                            note="allow_plaintext = true: credentials and mail cross the network unencrypted")
        uncertain = self.store.recover_interrupted_sends(self.lock)  # we hold the lock: nobody else sends
        if uncertain:
            log.warning("replies_uncertain", outbox_ids=uncertain,
                        note="interrupted during delivery; not resent, check by hand")
            self.monitor.uncertain(uncertain)  # counted by kind
        log.info("daemon_started", once=once, store=self.settings.store.url.split("://")[0])

        def notify() -> None:
            loop.call_soon_threadsafe(self.outbox.wake.set)

        worker = ImapWorker(self.settings, self.store, self.processor, notify, self.thread_stop,
                            self.prefer_move, monitor=None if once else self.monitor)
        if once:  # drain first, then send: a crash while filing never cuts a delivery short
            try:
                ok = await asyncio.to_thread(worker.run, True)
            except Exception as e:  # the store, a bug: say so, exit non-zero
                log.error("imap_worker_failed", error=type(e).__name__)
                return 1
            await asyncio.to_thread(self.scheduler.run, utcnow())
            await self.outbox.send_all()
            log.info("daemon_stopped", processed=worker.processed, outbox=self.store.counts(), ok=ok)
            return 0 if ok else 1
        self.monitor.start()  # metrics export, health status file
        monitor_task = asyncio.create_task(self.monitor.run(stop))
        outbox_task = asyncio.create_task(self.outbox.run(stop))
        scheduler_task = asyncio.create_task(self._schedule(stop))
        lock_task = asyncio.create_task(self._watch_lock(request_stop))
        imap_task = asyncio.create_task(asyncio.to_thread(worker.run, False))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, imap_task], return_when=asyncio.FIRST_COMPLETED)
        failed = None
        if imap_task.done() and imap_task.exception() is not None:
            # not a connection problem (those are retried): the store, a bug. Exit non-zero,
            # systemd restarts us; every message is still in the inbox or in the store.
            failed = imap_task.exception()
            log.error("imap_worker_failed", error=type(failed).__name__)
            self.monitor.error("worker", failed)
            self.monitor.stop_requested()
        self.thread_stop.set()
        stop.set()
        if not imap_task.done():
            await imap_task
        await outbox_task
        await scheduler_task
        await monitor_task
        lock_task.cancel()
        await asyncio.to_thread(self.monitor.stopped)  # health: running false; metrics off
        log.info("daemon_stopped", processed=worker.processed, outbox=self.store.counts())
        return 1 if failed or self.lock_lost else 0

    async def _watch_lock(self, request_stop) -> None:  # noqa: ANN001
        """A PostgreSQL session (and its advisory lock) can be cut under us, a lock file removed by
        hand: then another daemon may start, so this one stops (exit 1; systemd restarts it)."""
        while True:
            await asyncio.sleep(self.settings.daemon.lock_check_seconds)
            if not await asyncio.to_thread(self.lock.alive):
                log.error("instance_lock_lost", store=self.settings.store.url.split("://")[0],
                          note="stopping: another daemon may hold the store now")
                self.lock_lost = True
                request_stop("instance_lock_lost")
                return


    async def _schedule(self, stop: asyncio.Event) -> None:
        """Reminders, closings and the digest, every `cases.scheduler_interval_seconds`."""
        while not stop.is_set():
            try:
                done = await asyncio.to_thread(self.scheduler.run, utcnow())
                if any(done.values()):
                    self.outbox.wake.set()
            except Exception as e:  # keep scheduling; the store keeps what is due
                log.error("scheduler_error", error=type(e).__name__)
                self.monitor.error("scheduler", e)
            try:
                await asyncio.wait_for(stop.wait(), self.settings.cases.scheduler_interval_seconds)
            except asyncio.TimeoutError:
                pass


def main(config: str, once: bool = False, early_stop: list[str] | None = None) -> int:
    settings = load_settings(config)
    logs.configure(os.environ.get("INTAKE_LOG_LEVEL", "info"))
    prefer_move = os.environ.get("INTAKE_IMAP_NO_MOVE") != "1"
    daemon = Daemon(settings, prefer_move=prefer_move)  # StoreLocked: the cli says so, exit 2
    daemon.early_stop = early_stop if early_stop is not None else []
    try:
        return asyncio.run(daemon.run(once))
    finally:
        daemon.close()
