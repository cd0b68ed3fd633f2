"""What the running daemon tells the outside world about itself, from one place: systemd
(READY, STATUS, WATCHDOG, STOPPING via intake.service.sdnotify), the metrics
(intake.service.metrics) and the health status file (intake.service.health).

The IMAP worker thread calls in as it works. Only that thread (and the triage of its batch)
pings the watchdog: when it hangs, the pings stop and systemd restarts the service. The asyncio
side only rewrites the status file, the textfile and the STATUS line every few seconds.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import threading
import time

from intake.config import Settings
from intake.service import health, logs, metrics
from intake.service.sdnotify import Notifier

log = logs.get("intake.service.monitor")


def _hms(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "never"


class Monitor:
    def __init__(self, settings: Settings, store, notifier: Notifier | None = None) -> None:  # noqa: ANN001
        self.settings = settings
        self.store = store
        self.notify = notifier if notifier is not None else Notifier.from_environment()
        self.exporter = metrics.Exporter(settings.metrics, store.engine if store is not None else None)
        self.status_file = health.status_path(settings)
        self.pid = os.getpid()
        self.started = time.time()
        self.imap_connected = False
        self.last_sync: float | None = None
        self.last_error: dict | None = None  # {"at": unix time, "what": "IMAP ConnectionRefusedError"}
        self.retry_at: float | None = None
        self.draining = 0  # messages left in the drain in hand
        self.outbox: dict = {"states": {}, "oldest_pending_seconds": 0.0}
        self.stopping = False
        self._write_errors: dict[str, str] = {}

    @classmethod
    def inert(cls, settings: Settings, store) -> "Monitor":  # noqa: ANN001
        """One that tells systemd nothing (not taken from the environment)."""
        return cls(settings, store, Notifier(None))

    # --- the worker thread -----------------------------------------------------------------
    def alive(self) -> None:
        """The worker made progress: ping the watchdog (at most every WATCHDOG_USEC/4)."""
        self.notify.watchdog()

    def wait_tick(self, heard: float | None = None) -> None:
        """Called by Mailbox.wait about once a second. `heard`: time.monotonic() the server was
        last heard from during IDLE (it would have said EXISTS): the inbox is in sync as of then."""
        if heard is not None:
            self.last_sync = max(self.last_sync or 0.0, time.time() - (time.monotonic() - heard))
            metrics.LAST_SYNC.set(self.last_sync)
        self.notify.watchdog()

    def sleep(self, stop: threading.Event, seconds: float) -> None:
        """The reconnect back-off: wait, still pinging (the worker is alive and on schedule)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self.notify.watchdog()
            stop.wait(min(1.0, left))

    def connected(self) -> None:
        """Mailbox connected and selected (the store was opened before): READY=1 the first time."""
        self.imap_connected = True
        self.retry_at = None
        metrics.IMAP_CONNECTED.set(1)
        self.notify.watchdog()
        self.notify.ready(self.status_line())

    def drain_started(self, n: int) -> None:
        self.draining = n
        if n:
            self.notify.status(self.status_line())

    def batch_done(self, n: int) -> None:
        self.draining = max(0, self.draining - n)
        self.notify.watchdog()
        self.notify.status(self.status_line())

    def synced(self) -> None:
        """A drain finished: every message in the inbox is in the store and filed."""
        self.draining = 0
        self.last_sync = time.time()
        metrics.LAST_SYNC.set(self.last_sync)
        self.notify.watchdog()
        self._read_outbox()  # the replies this drain queued: "N waiting" right away
        self.notify.status(self.status_line())

    def _read_outbox(self) -> None:
        try:
            self.outbox = metrics.outbox_facts(self.store.engine)
        except Exception as e:  # noqa: BLE001 - the store is busy: keep the last facts
            log.warning("health_store_error", error=type(e).__name__)

    def imap_error(self, e: BaseException, retry_in: float) -> None:
        """Connection lost or refused: the error's class only (its text may name hosts, users)."""
        self.imap_connected = False
        self.draining = 0
        self.retry_at = time.time() + retry_in
        metrics.IMAP_CONNECTED.set(0)
        metrics.IMAP_ERRORS.labels(type(e).__name__).inc()
        self.error("IMAP", e)
        self.notify.watchdog()

    def disconnected(self) -> None:
        self.imap_connected = False
        metrics.IMAP_CONNECTED.set(0)

    def triaged(self, seconds: float) -> None:
        """One message of the batch triaged (any triage thread): a histogram entry, and progress."""
        metrics.triage_seconds(seconds)
        self.notify.watchdog()

    # --- anywhere ----------------------------------------------------------------------------
    def error(self, where: str, e: BaseException | str) -> None:
        what = e if isinstance(e, str) else type(e).__name__
        self.last_error = {"at": time.time(), "what": f"{where} {what}"}
        self.notify.status(self.status_line())

    def uncertain(self, entry_ids: list[int]) -> None:
        """Replies found interrupted mid-delivery at start: counted by kind."""
        if not entry_ids:
            return
        from sqlmodel import select

        from intake.edges.store import OutboxEntry

        with self.store.session() as s:
            kinds = list(s.exec(select(OutboxEntry.kind).where(OutboxEntry.id.in_(entry_ids))))
        for kind in kinds:
            metrics.reply_outcome(kind, "uncertain")

    def status_line(self) -> str:
        """One line for `systemctl status`."""
        if self.stopping:
            return "stopping: finishing the message in hand"
        err = self.last_error
        if not self.imap_connected and err and self.retry_at and err["what"].startswith("IMAP"):
            retry = f" (retry in {max(0, round(self.retry_at - time.time()))} s)" if self.retry_at else ""
            return f"IMAP reconnecting: {err['what'][5:]}{retry}; last sync {_hms(self.last_sync)}"
        if not self.imap_connected:
            return "connecting to the mailbox"
        waiting = self.outbox["states"].get("pending", 0) + self.outbox["states"].get("sending", 0)
        if self.draining:
            line = f"draining {self.draining} message{'s' if self.draining != 1 else ''}, {waiting} waiting"
        else:
            line = f"idle, {waiting} waiting, last sync {_hms(self.last_sync)}"
        if err:
            line += f"; last error {_hms(err['at'])} {err['what']}"
        return line

    # --- the event loop -----------------------------------------------------------------------
    def start(self) -> None:
        """Metrics export on, a traceback of every thread on SIGABRT (the watchdog's signal), the
        first status file."""
        faulthandler.enable()
        self.exporter.start()
        self.notify.status(self.status_line())
        self.refresh()

    def snapshot(self) -> dict:
        from intake.edges.oauth import LAST_AUTH_ERROR

        return {"pid": self.pid, "started": self.started, "updated": time.time(),
                "running": not self.stopping, "interval_seconds": self.settings.health.interval_seconds,
                "status": self.status_line(), "imap_connected": self.imap_connected,
                "last_sync": self.last_sync, "last_error": self.last_error,
                "auth_errors": dict(LAST_AUTH_ERROR), "outbox": self.outbox,
                "counters": metrics.counters()}

    def refresh(self) -> None:
        """Read the outbox facts, rewrite the status file, the textfile and the STATUS line."""
        self._read_outbox()
        for what, write in (("status_file", lambda: health.write_status(self.status_file, self.snapshot())),
                            ("metrics_textfile", self.exporter.write)):
            try:
                write()
                self._write_errors.pop(what, None)
            except OSError as e:  # logged once, not every few seconds
                if self._write_errors.get(what) != type(e).__name__:
                    self._write_errors[what] = type(e).__name__
                    log.warning("health_write_failed", file=what, error=type(e).__name__)
        self.notify.status(self.status_line())

    async def run(self, stop: asyncio.Event) -> None:
        interval = min(self.settings.health.interval_seconds, self.settings.metrics.textfile_interval_seconds)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
            if not stop.is_set():
                await asyncio.to_thread(self.refresh)

    def stop_requested(self) -> None:
        self.stopping = True
        self.notify.stopping(self.status_line())

    def stopped(self) -> None:
        """Last status file (running: false), metrics export off."""
        self.stopping = True
        self.disconnected()
        try:
            self.refresh()
        finally:
            self.exporter.stop()
            self.notify.close()
