"""Tell systemd how the daemon is doing: the sd_notify(3) protocol over $NOTIFY_SOCKET.

One datagram per message on an AF_UNIX SOCK_DGRAM socket ("@name": abstract namespace),
newline-separated KEY=value lines: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1. Without
$NOTIFY_SOCKET (not under systemd, or not Type=notify) every call does nothing. No dependency:
the protocol is a few lines.
"""

from __future__ import annotations

import os
import socket
import threading
import time


class Notifier:
    """`from_environment()` takes $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID out of the
    environment, so that children (triage workers, gpg, openssl) do not inherit them."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self.address = address or None
        # how often `watchdog()` pings: half the timeout systemd enforces
        self.watchdog_interval = watchdog_usec / 4e6 if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._last_ping = float("-inf")
        self._status: str | None = None
        self.ready_sent = False

    @classmethod
    def from_environment(cls, environ: os._Environ | dict | None = None) -> "Notifier":
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None)
        usec, pid = env.pop("WATCHDOG_USEC", None), env.pop("WATCHDOG_PID", None)
        watchdog = None
        try:
            if usec and (not pid or int(pid) == os.getpid()):  # the watchdog is meant for us
                watchdog = int(usec)
        except ValueError:
            watchdog = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one notification; False when there is no socket or it could not be sent (systemd
        gone, or not listening): the daemon carries on either way."""
        if self.address is None:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self.address)
                return True
            except OSError:
                return False

    def ready(self, status: str | None = None) -> None:
        """READY=1 (once): start-up is complete."""
        if self.ready_sent:
            if status:
                self.status(status)
            return
        self.ready_sent = True
        if status:
            self._status = status
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """STATUS= (what `systemctl status` shows); repeated texts are not sent again."""
        text = " ".join(text.split())  # one line
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        """WATCHDOG=1, at most every WATCHDOG_USEC/4 (the worker ticks about once a second, so
        pings come well inside systemd's recommended USEC/2). Call it from the loop that does the work,
        as often as you like: when that loop stops calling, systemd restarts the service."""
        if self.watchdog_interval is None or self.address is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> None:
        self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
