"""Send the replies waiting in the store's outbox over SMTP (aiosmtplib), at most once each.

An entry is claimed before the SMTP transaction: one conditional UPDATE 'pending' -> 'sending'
(committed), so of two senders on one store exactly one delivers it; 'sent' after it; a
failure the server reports or a connection that cannot be made puts it back to 'pending' with
capped exponential backoff, so replies survive SMTP outages and restarts. An entry the holder of
the store's instance lock finds in 'sending' at start-up was interrupted mid-delivery: it is
marked 'uncertain', never resent; so is one whose connection breaks after DATA without a reply
(the server may have it: sending it again could answer twice).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils

import aiosmtplib

from intake.service import failpoints, logs, metrics
from intake.config import OutboxConfig, Settings, SmtpConfig, read_secret
from intake.core.replies import Reply
from intake.edges.oauth import AuthFailure, AuthWatch, smtp_login
from intake.edges.store import OutboxEntry, Store, utcnow
from intake.edges.tls import client_context

log = logs.get("intake.edges.outbox")


def enqueue(store: Store, s, settings: Settings, reply: Reply | None, dedupe: str,  # noqa: ANN001
            record_id: int | None = None, case_id: int | None = None) -> int | None:
    """Put a mail in the outbox, in the caller's transaction, at most once per dedupe key."""
    if reply is None or store.reply_exists(s, dedupe):
        return None
    domain = settings.reply_from.rpartition("@")[2] or "localhost"
    mid = email.utils.make_msgid(domain=domain)
    msg = reply.to_email(settings.reply_from, settings.smtp.from_name if settings.smtp else "", mid)
    entry = OutboxEntry(dedupe_key=dedupe, message_record_id=record_id, case_id=case_id, kind=reply.kind,
                        to_addr=reply.to, from_addr=settings.reply_from, reply_message_id=mid,
                        raw=msg.as_bytes())
    s.add(entry)
    s.flush()
    return entry.id


def backoff(attempts: int, cfg: OutboxConfig) -> float:
    return min(cfg.retry_max_seconds, cfg.retry_initial_seconds * (2 ** max(0, attempts - 1)))


class Outbox:
    def __init__(self, store: Store, smtp: SmtpConfig, cfg: OutboxConfig) -> None:
        self.store = store
        self.smtp = smtp
        self.cfg = cfg
        self.wake = asyncio.Event()
        self._password = (read_secret(smtp.password_file, private=True)
                          if smtp.password_file and smtp.auth == "password" else None)
        self.auth = AuthWatch("smtp")  # sign-in failures: logged once; .last_error for health

    def _client(self) -> aiosmtplib.SMTP:
        s = self.smtp
        ctx = client_context(s.ca_file) if s.security != "plain" else None
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_seconds,
            use_tls=s.security == "tls", start_tls=True if s.security == "starttls" else False,
            tls_context=ctx, validate_certs=s.security != "plain",
        )

    async def send_all(self) -> int:
        """Catch-up (--once): send every pending entry, backoff or not, until one fails."""
        latest = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        total = 0
        while True:
            due = self.store.due_replies(now=latest)
            if not due:
                return total
            sent, failed = await self.send_batch(due, latest)
            total += sent
            if failed or not sent:
                return total

    async def send_due(self) -> int:
        """One pass over the due entries on one SMTP connection. Returns how many were sent."""
        now = utcnow()
        due = self.store.due_replies(now)
        if not due:
            return 0
        return (await self.send_batch(due, now))[0]

    async def send_batch(self, due: list[OutboxEntry], now: dt.datetime | None = None) -> tuple[int, int]:
        """Deliver `due` over one SMTP connection, each entry only once this sender has claimed
        it (another may have, meanwhile). Returns (sent, failed or deferred)."""
        now = now or utcnow()
        client = self._client()
        try:
            await client.connect()
            await smtp_login(client, self.smtp, self._password)  # password or AUTH XOAUTH2
            self.auth.ok()
        except AuthFailure as e:  # entries stay pending with backoff; logged once per streak
            client.close()
            for entry in due:
                self._retry(entry, "authentication failed", entry.attempts + 1, expect="pending")
            self.auth.failed(e, backoff(min(x.attempts for x in due) + 1, self.cfg) if due else 0.0)
            return 0, len(due)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
            for entry in due:  # not claimed: deferred only if still pending
                self._retry(entry, f"connect: {type(e).__name__}", entry.attempts + 1, expect="pending")
            log.warning("smtp_unavailable", error=type(e).__name__, pending=len(due))
            return 0, len(due)
        sent = failed = 0
        try:
            for entry in due:
                outcome = await self._send(client, entry, now)
                sent += outcome is True
                failed += outcome is False
        finally:
            try:
                await client.quit()
            except Exception:
                client.close()
        return sent, failed

    async def _send(self, client: aiosmtplib.SMTP, entry: OutboxEntry, now: dt.datetime) -> bool | None:
        """True: delivered; False: failed or deferred; None: another sender claimed it first."""
        attempts = self.store.claim_reply(entry.id, now)  # 'pending' -> 'sending', or None
        if attempts is None:
            log.info("reply_claimed_elsewhere", outbox_id=entry.id)
            return None
        failpoints.hit("before_smtp_send")
        handed_over = False  # from DATA on, the server may have the reply whatever we hear back
        try:
            await client.mail(entry.from_addr)
            await client.rcpt(entry.to_addr)
            handed_over = True
            await client.data(entry.raw)
        except aiosmtplib.SMTPResponseException as e:  # refused: certainly not delivered
            try:
                await client.rset()
            except Exception:
                pass
            if 500 <= e.code < 600:
                self.store.set_reply_state(entry.id, "failed", expect="sending", last_error=f"{e.code} permanent")
                log.error("reply_failed", outbox_id=entry.id, smtp_code=e.code)
                metrics.reply_outcome(entry.kind, "failed")
                return False
            self._retry(entry, f"{e.code} temporary", attempts)
            return False
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
            if handed_over:  # cut off after the data went out: sending again may answer twice
                self.store.set_reply_state(entry.id, "uncertain", expect="sending",
                                           last_error=f"connection lost after DATA: {type(e).__name__}")
                log.warning("reply_uncertain", outbox_id=entry.id, error=type(e).__name__,
                            note="connection lost after the reply was handed over; not resent, check by hand")
                metrics.reply_outcome(entry.kind, "uncertain")
                return False
            self._retry(entry, type(e).__name__, attempts)
            return False
        failpoints.hit("after_smtp_send")
        if not self.store.set_reply_state(entry.id, "sent", expect="sending", sent_at=utcnow(), last_error=None):
            log.warning("reply_state_changed_elsewhere", outbox_id=entry.id, note="delivered; state left as found")
        log.info("reply_sent", outbox_id=entry.id, kind=entry.kind, case_id=entry.case_id,
                 message_record_id=entry.message_record_id, attempts=attempts)
        metrics.reply_outcome(entry.kind, "sent")
        return True

    def _retry(self, entry: OutboxEntry, error: str, attempts: int, expect: str = "sending") -> None:
        if attempts >= self.cfg.max_attempts:
            self.store.set_reply_state(entry.id, "failed", expect=expect, attempts=attempts, last_error=error)
            log.error("reply_failed", outbox_id=entry.id, error=error, attempts=attempts)
            metrics.reply_outcome(entry.kind, "failed")
            return
        delay = backoff(attempts, self.cfg)
        if self.store.set_reply_state(entry.id, "pending", expect=expect, attempts=attempts, last_error=error,
                                      next_attempt_at=utcnow() + dt.timedelta(seconds=delay)):
            log.info("reply_deferred", outbox_id=entry.id, error=error, attempts=attempts,
                     retry_in_s=round(delay, 1))
            metrics.reply_outcome(entry.kind, "deferred")

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set: on every wake-up, and when the next retry is due."""
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.send_due()
            except Exception as e:  # the loop must survive anything: entries stay in the store
                log.error("outbox_error", error=type(e).__name__)
            nxt = self.store.next_due_at()
            timeout = 30.0 if nxt is None else max(0.05, min(30.0, (nxt - utcnow()).total_seconds()))
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
