"""Back up the store and restore it: `intake backup` and `intake restore`.

SQLite: the backup is taken with SQLite's online backup API (a consistent snapshot while the
daemon runs, WAL or not) into a temporary file beside the target, checked, and linked to its name
(never over an existing file), mode 0600. The restore copies a backup back the same way, under
the store's instance lock (never while a daemon runs), and first marks every outbox entry that
was pending or sending at backup time 'uncertain': it may have been sent after the backup, so a
person decides (`intake outbox resolve`), nothing is sent twice on its own.

PostgreSQL: pg_dump / pg_restore are the tools; we print the command lines, and
`intake restore --mark-uncertain` does the outbox step after a pg_restore.

The HMAC key is not copied into the backup: with it, a stolen backup would let anyone test CPR
numbers against the keyed hashes (the masked CPR leaves only 10,000 candidates per person). It
must be backed up separately, with the other credentials.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shlex
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from intake.config import Settings
from intake.edges.hmackey import fsync_dir
from intake.edges.instance_lock import lock_for

SQLITE_MAGIC = b"SQLite format 3\x00"
UNCERTAIN_NOTE = "pending or sending when the backup was taken; may have been sent after it (restore)"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass
class BackupInfo:
    path: Path
    size: int
    revision: str | None
    counts: dict[str, int]
    newest: str | None
    key_file: Path | None


@dataclass
class RestoreInfo:
    marked_uncertain: list[int]
    revision: str | None
    newest: str | None
    key_file: Path | None
    key_present: bool
    checkpoints: list[tuple[str, int, int]] = field(default_factory=list)
    schema_note: str | None = None
    replaced: "Replaced | None" = None


@dataclass
class Replaced:
    """What the replaced store knew that the backup does not (it came after the backup)."""
    messages: int  # messages recorded after the backup: in their triage folders, unknown now
    sent: int  # replies sent after the backup
    unsent: list[tuple[int, str, str, str, str | None]]  # (id, kind, recipient, state, case ref) dropped unsent
    error: str | None = None  # the replaced store could not be read


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other back-ends."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise BackupError("an in-memory SQLite store cannot be backed up")
    return Path(u.database)


def libpq_url(url: str) -> str:
    """The URL for pg_dump/pg_restore: no driver suffix, no password (use ~/.pgpass or PGPASSWORD)."""
    u = make_url(url)
    u = URL.create("postgresql", u.username, None, u.host, u.port, u.database, u.query)
    return u.render_as_string(hide_password=False)


def pg_dump_command(url: str, out: Path) -> str:
    return shlex.join(["pg_dump", "--format=custom", f"--file={out}", libpq_url(url)])


def pg_restore_command(url: str, src: Path) -> str:
    return shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                       f"--dbname={libpq_url(url)}", str(src)])


def key_file(settings: Settings) -> Path | None:
    """Where the HMAC key lives: the configured file, or `<db>.hmac-key` beside a SQLite store."""
    if settings.store.hmac_key_file:
        return Path(settings.store.hmac_key_file)
    db = sqlite_file(settings.store.url)
    return db.with_name(db.name + ".hmac-key") if db else None


def _describe(con: sqlite3.Connection) -> tuple[str | None, dict[str, int], str | None]:
    """(schema revision, row counts, newest timestamp) of a SQLite database."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    revision = None
    if "alembic_version" in tables:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    counts = {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
              for t in ("cases", "messages", "outbox") if t in tables}
    stamps = [("messages", "received_at"), ("outbox", "created_at"), ("checkpoints", "updated_at"),
              ("cases", "updated_at")]
    newest = max((v for t, c in stamps if t in tables
                  for (v,) in con.execute(f'SELECT MAX("{c}") FROM "{t}"') if v), default=None)
    return revision, counts, str(newest)[:19] if newest else None


def _check_sqlite(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror}") from e
    if magic != SQLITE_MAGIC:
        raise BackupError(f"{path} is not a SQLite database (a PostgreSQL dump is restored with pg_restore)")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        ok = con.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"{path} is damaged: {ok}")
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone():
            raise BackupError(f"{path} is not an intake store (no outbox table)")


def _new_private_file(folder: Path, stem: str) -> Path:
    tmp = folder / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    return tmp


def _copy(src: sqlite3.Connection, dst_path: Path) -> None:
    """A consistent copy of `src` into `dst_path` as one self-contained file (no WAL)."""
    with closing(sqlite3.connect(dst_path)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        ok = dst.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"the copy failed its check: {ok}")
    fd = os.open(dst_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(settings: Settings, out: Path) -> BackupInfo:
    """Write a consistent copy of the SQLite store to `out` (which must not exist)."""
    db = sqlite_file(settings.store.url)
    if db is None:
        raise BackupError("a PostgreSQL store is backed up with pg_dump:\n  "
                          + pg_dump_command(settings.store.url, out))
    if not db.exists():
        raise BackupError(f"no store at {db}")
    if out.exists() or out.is_symlink():
        raise BackupError(f"{out} exists; refusing to overwrite it")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise BackupError(f"no folder {folder}")
    tmp = _new_private_file(folder, out.name)
    try:
        # busy_timeout: the daemon may be writing; the backup waits for its read snapshot
        try:
            with closing(sqlite3.connect(db, timeout=30)) as src:
                _copy(src, tmp)
        except sqlite3.Error as e:
            raise BackupError(f"cannot copy the store {db}: {e}") from e
        with closing(sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)) as con:
            revision, counts, newest = _describe(con)
        try:
            os.link(tmp, out)  # atomic, and never replaces a file that appeared meanwhile
        except FileExistsError:
            raise BackupError(f"{out} exists; refusing to overwrite it") from None
        fsync_dir(folder)
    finally:
        tmp.unlink(missing_ok=True)
        for suffix in ("-journal", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
    return BackupInfo(out, out.stat().st_size, revision, counts, newest, key_file(settings))


def _has_data(db: Path) -> bool:
    if not db.exists() or db.stat().st_size == 0:
        return False
    with closing(sqlite3.connect(db, timeout=30)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return any(con.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()
                   for t in ("messages", "cases", "outbox", "checkpoints") if t in tables)


def mark_uncertain_sql(con) -> list[int]:  # noqa: ANN001 - a SQLAlchemy connection
    """After a restore: every entry pending or sending at backup time -> 'uncertain'."""
    ids = [r[0] for r in con.execute(text(
        "SELECT id FROM outbox WHERE state IN ('pending', 'sending') ORDER BY id"))]
    con.execute(text("UPDATE outbox SET state = 'uncertain', last_error = :note "
                     "WHERE state IN ('pending', 'sending')"), {"note": UNCERTAIN_NOTE})
    return ids


def _schema_note(url: str, config: str | None) -> str | None:
    try:
        from intake.edges.schema import SchemaMismatch, status
    except ImportError:
        return None
    try:
        st = status(url)
    except Exception as e:  # noqa: BLE001 - a note, not the restore's business
        return f"schema: cannot tell ({type(e).__name__})"
    if st.state == "current":
        return f"schema: current ({st.current})"
    return "schema: " + SchemaMismatch(st).message(config)  # behind: `intake db upgrade` before starting


def restore(settings: Settings, src: Path, force: bool = False, config: str | None = None) -> RestoreInfo:
    """Put the SQLite backup `src` in place of the store. Raises StoreLocked while a daemon runs."""
    url = settings.store.url
    db = sqlite_file(url)
    if db is None:
        raise BackupError("a PostgreSQL store is restored with pg_restore, then the outbox is "
                          "marked with intake restore --mark-uncertain:\n  "
                          + pg_restore_command(url, src)
                          + "\n  intake restore --config CONFIG --mark-uncertain")
    _check_sqlite(src)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_for(url, "intake restore").acquire()  # StoreLocked: a daemon runs on this store
    try:
        try:
            has_data = _has_data(db)
        except sqlite3.Error as e:  # never overwrite what we cannot read: it may be all there is
            raise BackupError(f"the store {db} cannot be read ({e}); move it and its -wal and -shm "
                              "files aside (keep them), then restore again") from e
        if has_data and not force:
            raise BackupError(f"the store {db} holds data; restoring replaces all of it: add --force")
        replaced = _compare(db, src) if has_data else None
        tmp = _new_private_file(db.parent, db.name + ".restore")
        try:
            with closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as s:
                _copy(s, tmp)
            with closing(sqlite3.connect(tmp)) as con:
                revision, _counts, newest = _describe(con)
                ids = [r[0] for r in con.execute(
                    "SELECT id FROM outbox WHERE state IN ('pending', 'sending') ORDER BY id")]
                con.execute("UPDATE outbox SET state = 'uncertain', last_error = ? "
                            "WHERE state IN ('pending', 'sending')", (UNCERTAIN_NOTE,))
                con.commit()
                cps = (con.execute("SELECT folder, uidvalidity, last_uid FROM checkpoints").fetchall()
                       if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkpoints'").fetchone()
                       else [])
            # the live file is written through SQLite (its WAL and all), never renamed over
            try:
                with closing(sqlite3.connect(tmp)) as s, closing(sqlite3.connect(db, timeout=30)) as d:
                    d.execute("PRAGMA journal_mode=WAL")
                    s.backup(d)
                    d.execute("PRAGMA journal_mode=WAL")
                    d.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                raise BackupError(f"cannot write the store {db}: {e}; move it and its -wal and -shm "
                                  "files aside (keep them), then restore again") from e
            os.chmod(db, 0o600)
        finally:
            tmp.unlink(missing_ok=True)
            for suffix in ("-journal", "-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
    finally:
        lock.release()
    kf = key_file(settings)
    # a configured key file (a systemd credential) may only exist inside the service: not checked
    present = bool(settings.store.hmac_key_file) or bool(kf and kf.exists())
    return RestoreInfo(ids, revision, newest, kf, present, [tuple(c) for c in cps],
                       _schema_note(url, config), replaced)


def _compare(live: Path, src: Path) -> Replaced:
    """The messages and replies of the store about to be replaced that the backup lacks."""
    try:
        with closing(sqlite3.connect(f"file:{live}?mode=ro", uri=True, timeout=30)) as con:
            con.execute("ATTACH DATABASE ? AS b", (f"file:{src}?mode=ro",))
            messages = con.execute("SELECT COUNT(*) FROM main.messages WHERE content_hash NOT IN "
                                   "(SELECT content_hash FROM b.messages)").fetchone()[0]
            rows = con.execute("SELECT o.id, o.kind, o.to_addr, o.state, c.ref FROM main.outbox o "
                               "LEFT JOIN main.cases c ON c.id = o.case_id WHERE o.dedupe_key NOT IN "
                               "(SELECT dedupe_key FROM b.outbox) ORDER BY o.id").fetchall()
    except sqlite3.Error as e:  # a damaged store is why one restores
        return Replaced(0, 0, [], f"{type(e).__name__}: {e}")
    return Replaced(messages, sum(r[3] == "sent" for r in rows), [tuple(r) for r in rows if r[3] != "sent"])


def mark_uncertain(settings: Settings) -> list[int]:
    """The outbox step of a restore done by other means (pg_restore): under the instance lock."""
    from intake.edges.store import Store

    lock = lock_for(settings.store.url, "intake restore").acquire()
    try:
        store = Store(settings.store.url)
        with store.engine.begin() as con:
            return mark_uncertain_sql(con)
    finally:
        lock.release()


def when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return dt.datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    except ValueError:
        return stamp
