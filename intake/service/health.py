"""`intake health`: is the daemon well? Judged from another process (a shell, a monitoring check).

The running daemon rewrites a small JSON status file atomically (intake.service.monitor; by
default health.json beside the SQLite store, `[health] status_file` otherwise): pid, start and
update times, IMAP connected, last successful sync, last error, its counters. This module reads
that file and the store's outbox and says, in text (or JSON), what is wrong: the daemon not
running or not updating the file, no successful sync for too long, a reply waiting too long,
replies in uncertain or failed state. No message contents, no CPR numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from intake.config import Settings

DEFAULT_DIR = Path("/var/lib/intake")  # a non-SQLite store: the unit's StateDirectory


def status_path(settings: Settings) -> Path:
    """`[health] status_file`, else health.json beside the SQLite database file (for another
    store: /var/lib/intake/health.json, the unit's state directory)."""
    if settings.health.status_file:
        return Path(settings.health.status_file)
    from sqlalchemy.engine import make_url

    url = make_url(settings.store.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "health.json"
    return DEFAULT_DIR / "health.json"


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace the file atomically: a reader sees the old one or the new one, never half
    (temporary file beside it, then rename; `mode` when not the default 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_status(path: Path, data: dict) -> None:
    """The status file, replaced atomically."""
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but another user's (the service's own)
        return True
    return True


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        head = "intake: healthy" if self.ok else f"intake: UNHEALTHY ({len(self.problems)} problem(s))"
        return "\n".join([head] + [f"  problem: {p}" for p in self.problems] + [f"  {ln}" for ln in self.lines])

    def as_json(self) -> str:
        return json.dumps({"ok": self.ok, "problems": self.problems, **self.facts}, ensure_ascii=False)


def _store_facts(settings: Settings) -> dict:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from intake.service.metrics import outbox_facts

    url = make_url(settings.store.url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise FileNotFoundError(f"no database at {url.database}")
    engine = create_engine(settings.store.url)  # no create_all: a health check changes nothing
    try:
        return outbox_facts(engine)
    finally:
        engine.dispose()


def check(settings: Settings, max_sync_age_minutes: float | None = None,
          max_outbox_age_minutes: float | None = None, now: float | None = None) -> Report:
    cfg = settings.health
    max_sync = 60 * (cfg.max_sync_age_minutes if max_sync_age_minutes is None else max_sync_age_minutes)
    max_outbox = 60 * (cfg.max_outbox_age_minutes if max_outbox_age_minutes is None else max_outbox_age_minutes)
    now = time.time() if now is None else now
    r = Report()
    path = status_path(settings)
    try:
        st = read_status(path)
    except (OSError, ValueError) as e:
        st = None
        r.problems.append(f"cannot read the status file {path}: {getattr(e, 'strerror', None) or type(e).__name__}")
    running = False
    if st is None:
        if not r.problems:
            r.problems.append(f"daemon not running (no status file {path})")
    elif not st.get("running"):
        r.problems.append(f"daemon not running (stopped {_clock(st.get('updated'))})")
    elif not _alive(int(st.get("pid", 0))):
        r.problems.append(f"daemon not running (pid {st.get('pid')} is gone; last word {_clock(st.get('updated'))})")
    else:
        running = True
        stale = max(3 * float(st.get("interval_seconds") or cfg.interval_seconds), 60.0)
        age = now - float(st.get("updated") or 0)
        if age > stale:
            r.problems.append(f"daemon not responding (status file not updated for {_ago(age)})")
    if st is not None:
        r.facts["daemon"] = {k: st.get(k) for k in ("pid", "started", "updated", "running", "status",
                                                      "imap_connected", "last_sync", "last_error",
                                                      "auth_errors", "counters")}
        r.lines.append(f"daemon: {'running' if running else 'not running'}, pid {st.get('pid')}, "
                       f"started {_clock(st.get('started'))}; {st.get('status') or '-'}")
        last_sync = st.get("last_sync")
        imap = "connected" if st.get("imap_connected") else "not connected"
        r.lines.append(f"imap: {imap}, last sync {_clock(last_sync)}"
                       + (f" ({_ago(now - last_sync)} ago)" if last_sync else ""))
        err = st.get("last_error")
        if err:
            r.lines.append(f"last error: {_clock(err.get('at'))} {err.get('what')}")
        for proto, text in sorted((st.get("auth_errors") or {}).items()):
            if text:
                r.lines.append(f"{proto} sign-in failing: {text}")
        if running:
            since = last_sync or st.get("started") or now
            if now - since > max_sync:
                why = f"; {err.get('what')}" if err else ""
                r.problems.append(f"no successful sync for {_ago(now - since)} "
                                  f"(limit {_ago(max_sync)}; IMAP {imap}{why})")
        c = st.get("counters") or {}
        if c.get("messages") or c.get("replies"):
            r.lines.append("since start: messages " + (", ".join(f"{k} {v}" for k, v in sorted(c.get("messages", {}).items())) or "0")
                           + "; replies " + (", ".join(f"{k} {v}" for k, v in sorted(c.get("replies", {}).items())) or "0"))
    try:
        facts = _store_facts(settings)
    except Exception as e:  # noqa: BLE001 - unreadable store: say which kind of failure
        r.problems.append(f"cannot read the store: {type(e).__name__}: {getattr(e, 'strerror', None) or str(e)[:120]}")
        return r
    states, oldest = facts["states"], facts["oldest_pending_seconds"]
    r.facts["outbox"] = facts
    pending = states.get("pending", 0) + states.get("sending", 0)
    r.lines.append(f"outbox: {pending} waiting" + (f" (oldest {_ago(oldest)})" if pending else "")
                   + f", {states.get('sent', 0)} sent, {states.get('uncertain', 0)} uncertain, "
                   f"{states.get('failed', 0)} failed")
    if pending and oldest > max_outbox:
        r.problems.append(f"outbox stuck: {pending} repl{'y' if pending == 1 else 'ies'} waiting, the oldest "
                          f"for {_ago(oldest)} (limit {_ago(max_outbox)})")
    for state, what in (("uncertain", "uncertain (maybe sent, maybe not)"), ("failed", "failed")):
        n = states.get(state, 0)
        if n:
            r.problems.append(f"{n} repl{'y' if n == 1 else 'ies'} {what}: a person must settle "
                              f"{'it' if n == 1 else 'them'} (intake outbox list)")
    return r


def main(settings: Settings, max_sync_age_minutes: float | None, max_outbox_age_minutes: float | None,
         as_json: bool = False) -> int:
    r = check(settings, max_sync_age_minutes, max_outbox_age_minutes)
    print(r.as_json() if as_json else r.text())
    return 0 if r.ok else 1
