"""Run the triage (and the reading of attached forms it does) in a child process with limits,
so that one hostile message costs bounded time and memory and never stalls the intake.

One long-lived child (`python -m intake.edges.worker`) takes messages one at a time over a pipe
(length-prefixed pickles; the parent only ever unpickles what its own child wrote): no fork
per message, so the cost is one round trip. The child runs with
- an address-space limit (RLIMIT_AS, `memory_mb`): a memory bomb raises MemoryError or kills
  the child;
- a CPU-time limit per message (RLIMIT_CPU, re-armed before every message to the CPU used so
  far plus `cpu_seconds`): a parser stuck in a loop is killed by SIGXCPU;
and the parent waits at most `wall_seconds` for an answer. A message that hits any limit
gets `manual`/`too_costly` (never lost, never a crash of the daemon); the child is replaced
and the next message goes on. Settings travel to the child as their JSON form.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

from intake.config import Settings
from intake.core.mimeparse import Parsed

_LEN = struct.Struct("!Q")
MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WorkerLimits:
    memory_mb: int = 512  # address space of the child (its own ~80 MB included)
    cpu_seconds: float = 10.0  # CPU time per message
    wall_seconds: float = 30.0  # the parent's patience per message (a blocked child)


def limits_for(settings: Settings) -> WorkerLimits:
    lim = settings.triage.limits
    return WorkerLimits(lim.worker_memory_mb, lim.worker_cpu_seconds, lim.worker_wall_seconds)


def triager(settings: Settings):  # noqa: ANN201
    """The triage callable the edges use: a limited worker process (default), or the pure
    function in this process when `[triage.limits] worker = false`."""
    if settings.triage.limits.worker:
        return TriageWorker(settings, limits_for(settings)).triage
    from intake.core.rules import load_rules
    from intake.core.triage import triage

    rules = load_rules(settings.triage.rules_file)
    return lambda raw, **kw: triage(raw, settings, rules, **kw)


class TriagePool:
    """`processes` workers (one per core by default) that triage a batch side by side: the
    daemon hands over a fetched batch at once (`triage_many`), each worker takes the next
    message when it is free. Without the worker (`worker = false`) the batch runs here."""

    def __init__(self, settings: Settings, processes: int | None = None) -> None:
        n = processes or settings.triage.limits.worker_processes or (os.cpu_count() or 1)
        self.single = triager(settings)
        self.workers = [TriageWorker(settings, limits_for(settings)) for _ in range(max(1, n) - 1)] \
            if settings.triage.limits.worker else []
        self.on_done = None  # called with the seconds each message took (metrics, the watchdog)

    def _timed(self, decide, raw: bytes, **kw):  # noqa: ANN001, ANN003, ANN202
        t0 = time.monotonic()
        out = decide(raw, **kw)
        if self.on_done is not None:
            self.on_done(time.monotonic() - t0)
        return out

    def triage(self, raw: bytes, **kw):  # noqa: ANN003, ANN201
        return self._timed(self.single, raw, **kw)

    def triage_many(self, raws: list[bytes], **kw) -> list:  # noqa: ANN003
        if not self.workers or len(raws) < 2:
            return [self._timed(self.single, raw, **kw) for raw in raws]
        import queue
        import threading

        results: list = [None] * len(raws)
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for item in enumerate(raws):
            todo.put(item)

        def run(decide) -> None:  # noqa: ANN001
            while True:
                try:
                    i, raw = todo.get_nowait()
                except queue.Empty:
                    return
                results[i] = self._timed(decide, raw, **kw)

        threads = [threading.Thread(target=run, args=(w.triage,), daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        run(self.single)
        for t in threads:
            t.join()
        return results

    def close(self) -> None:
        for w in self.workers:
            w.close()
        owner = getattr(self.single, "__self__", None)
        if isinstance(owner, TriageWorker):
            owner.close()


class TooCostly(Exception):
    pass


def _too_costly(raw: bytes, why: str):  # noqa: ANN202
    from intake.core.triage import Result

    parsed = Parsed(problem="too_costly")
    r = Result(decision="manual", manual_reason="too_costly")
    r.evidence = {"decision": [{"source": "worker", "rule": why}]}
    return r, parsed


class TriageWorker:
    """The parent side: `triage(raw, **kw)` gives what `intake.core.triage.triage` gives, within limits."""

    def __init__(self, settings: Settings, limits: WorkerLimits | None = None) -> None:
        self.settings = settings
        self.limits = limits or WorkerLimits()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    # --- process ------------------------------------------------------------------------------
    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        env["INTAKE_WORKER_LIMITS"] = f"{self.limits.memory_mb},{self.limits.cpu_seconds}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "intake.edges.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self._send(proc, self.settings.model_dump_json().encode())
        return proc

    @staticmethod
    def _send(proc: subprocess.Popen, data: bytes) -> None:
        assert proc.stdin is not None
        proc.stdin.write(_LEN.pack(len(data)) + data)
        proc.stdin.flush()

    def _read(self, proc: subprocess.Popen, deadline: float) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = bytearray()
        need = _LEN.size
        header = True
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TooCostly(f"no answer within {self.limits.wall_seconds:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(1 << 20, need - len(buf)))
            if not chunk:
                code = proc.poll()
                raise TooCostly(f"worker ended ({_why(code)})")
            buf += chunk
            if header and len(buf) == _LEN.size:
                (n,) = _LEN.unpack(bytes(buf))
                if n > MAX_REPLY_BYTES:
                    raise TooCostly("answer too large")
                buf.clear()
                need, header = n, False
                if n == 0:
                    break
        return bytes(buf)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()  # type: ignore[union-attr]
                except Exception:
                    pass
            self.proc = None

    def __enter__(self) -> TriageWorker:
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.close()

    # --- work ---------------------------------------------------------------------------------
    def triage(self, raw: bytes, **kw):  # noqa: ANN003, ANN201
        """(Result, Parsed) for one message; `manual`/`too_costly` when it hits a limit.
        Keyword arguments are those of `intake.core.triage.triage` (today, render_reply, …)."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.close()
                self.restarts += 1
            self.proc = self._start()
        proc = self.proc
        try:
            self._send(proc, pickle.dumps((raw, kw), protocol=pickle.HIGHEST_PROTOCOL))
            answer = self._read(proc, time.monotonic() + self.limits.wall_seconds)
            return pickle.loads(answer)  # noqa: S301 - our own child's answer
        except (TooCostly, BrokenPipeError, OSError, EOFError, pickle.UnpicklingError) as e:
            self.close()
            self.restarts += 1
            return _too_costly(raw, str(e) if isinstance(e, TooCostly) else f"worker failed: {type(e).__name__}")


def _why(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        sig = -code
        return {signal.SIGXCPU: "CPU time limit", signal.SIGKILL: "killed (memory or by hand)",
                signal.SIGSEGV: "crashed"}.get(sig, f"signal {sig}")
    return f"exit {code}"


# --- the child ----------------------------------------------------------------------------------

def _read_exact(f, n: int) -> bytes:  # noqa: ANN001
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _child() -> int:
    mem_mb, cpu = os.environ.get("INTAKE_WORKER_LIMITS", "512,10").split(",")
    cpu_s = float(cpu)
    limit = int(mem_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from intake.core.rules import load_rules
    from intake.core.triage import triage

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    (n,) = _LEN.unpack(_read_exact(stdin, _LEN.size))
    settings = Settings.model_validate_json(_read_exact(stdin, n))
    rules = load_rules(settings.triage.rules_file)
    while True:
        try:
            (n,) = _LEN.unpack(_read_exact(stdin, _LEN.size))
            raw, kw = pickle.loads(_read_exact(stdin, n))  # noqa: S301 - from our parent
        except EOFError:
            return 0
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime + cpu_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        if isinstance(kw.get("today"), str):
            kw["today"] = dt.date.fromisoformat(kw["today"])
        result, parsed = triage(raw, settings, rules, **kw)
        parsed.documents = []  # the forms' bytes stay here
        try:
            out = pickle.dumps((result, parsed), protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            out = pickle.dumps(_too_costly(raw, "answer did not fit in memory"), protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(_LEN.pack(len(out)) + out)
        stdout.flush()


if __name__ == "__main__":
    raise SystemExit(_child())
