"""One sender per store: an exclusive lock that `intake run` and `intake remind` hold while they run.

SQLite: an OS file lock (`flock`, exclusive, non-blocking) on `<db>.lock` beside the database.
PostgreSQL: a session-level advisory lock on a dedicated connection. Both are released whatever
way the holder dies: the kernel drops a dead process's flock, the server ends the session (and
its advisory locks) when the connection goes. A process that cannot take the lock gets
`StoreLocked`, naming the holder (pid and command) when it can be found.

Only the holder may mark entries left in 'sending' as 'uncertain': while it holds the lock no
other live process can have a delivery in flight on this store.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from intake.config import ConfigError

# one advisory lock key per database: 64 bits of a fixed name
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"sme-intake:instance").digest()[:8], "big", signed=True)


class StoreLocked(Exception):
    """Another process holds the store's lock."""

    def __init__(self, url: str, holder: str | None) -> None:
        self.url, self.holder = url, holder
        super().__init__(f"another intake daemon holds the store {url} ({holder or 'pid unknown'}); "
                         "only one may run per store: stop it first")


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class InstanceLock:
    """Take with `acquire()` (raises StoreLocked), give back with `release()`."""

    def __init__(self, url: str, command: str = "intake") -> None:
        self.url, self.command = url, command
        self.held = False

    def acquire(self) -> "InstanceLock":
        raise NotImplementedError

    def alive(self) -> bool:
        """Still held? (A PostgreSQL session can be cut while we run; a file lock cannot.)"""
        return self.held

    def release(self) -> None:
        self.held = False

    def __enter__(self) -> "InstanceLock":
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.release()


class FileLock(InstanceLock):
    """flock(LOCK_EX | LOCK_NB) on `<db>.lock`; the file keeps the holder's pid and command."""

    def __init__(self, url: str, path: Path, command: str = "intake") -> None:
        super().__init__(url, command)
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (os.pread(fd, 200, 0).decode("utf-8", "replace").splitlines() or [""])[0].strip()
            os.close(fd)
            raise StoreLocked(safe_url(self.url), holder or None) from None
        except BaseException:
            os.close(fd)
            raise
        line = f"pid {os.getpid()}, {self.command}\n".encode()
        os.pwrite(fd, line, 0)  # then cut: a reader meanwhile sees a whole first line
        os.ftruncate(fd, len(line))
        self.fd, self.held = fd, True
        return self

    def alive(self) -> bool:
        """Held, and the file is still the one at the path (not removed or replaced by hand)."""
        try:
            return self.held and os.fstat(self.fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            return False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the flock; the file stays (unlinking it would race)
            self.fd = None
        self.held = False


class PgAdvisoryLock(InstanceLock):
    """pg_try_advisory_lock on a connection of its own, kept open (autocommit) for our life.
    Its application_name says who we are, so a refused starter can name the holder."""

    def __init__(self, url: str, command: str = "intake") -> None:
        super().__init__(url, command)
        self.conn: Connection | None = None
        self.engine = None

    def acquire(self) -> "PgAdvisoryLock":
        name = f"sme-intake pid {os.getpid()} on {socket.gethostname()}, {self.command}"[:63]
        self.engine = create_engine(
            self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
            connect_args={"application_name": name, "keepalives": 1, "keepalives_idle": 30,
                          "keepalives_interval": 10, "keepalives_count": 3})
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}).scalar()
            if not got:
                holder = conn.execute(text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"),
                    {"hi": (PG_LOCK_KEY >> 32) & 0xFFFFFFFF, "lo": PG_LOCK_KEY & 0xFFFFFFFF}).scalar()
                raise StoreLocked(safe_url(self.url), (holder or "").removeprefix("sme-intake ") or None)
        except BaseException:
            conn.close()
            self.engine.dispose()
            raise
        self.conn, self.held = conn, True
        return self

    def alive(self) -> bool:
        if not self.held or self.conn is None:
            return False
        try:
            self.conn.execute(text("SELECT 1"))
            return True
        except Exception:
            self.held = False
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()  # the session ends, and its advisory locks with it
            except Exception:
                pass
            self.engine.dispose()
            self.conn = None
        self.held = False


class NoLock(InstanceLock):
    """An in-memory SQLite store belongs to one process: nothing to share."""

    def acquire(self) -> "NoLock":
        self.held = True
        return self


def lock_for(url: str, command: str = "intake") -> InstanceLock:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            return NoLock(url, command)
        db = Path(u.database)
        return FileLock(url, db.with_name(db.name + ".lock"), command)
    if backend == "postgresql":
        return PgAdvisoryLock(url, command)
    raise ConfigError(f"store.url: no single-instance lock for a {backend} store; "
                      "SQLite and PostgreSQL are supported")


def acquire(url: str, command: str = "intake") -> InstanceLock:
    """The store's lock, taken by `command` (named to a refused starter); StoreLocked when
    another process has it."""
    return lock_for(url, command).acquire()
