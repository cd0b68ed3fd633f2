"""A fault-injecting TCP proxy for the tests: sits between a client (the daemon, the outbox) and
a real server and breaks the n-th connection on purpose.

Faults, per connection number (`plan`: 1, 2, ...; the others get `default`, which passes):
  pass    forward both ways
  reset   forward `after` bytes from the server, then reset both sides (RST, mid-FETCH)
  stall   forward `after` bytes from the server, then forward nothing more either way
  slow    forward everything, `delay` seconds per chunk of at most 512 bytes from the server
  inject  forward `after` bytes from the server, then send `line` to the client (a `* BYE`);
          with `close`, end the connection after it
  cut_reply  after a client chunk of at least `after` bytes (SMTP: the message data), swallow
          the server's answer and reset: delivered, but the client cannot know
  refuse  answer the client's command lines matching `match` with `<tag> <line>` instead of
          forwarding them (a throttling `NO`), `times` times over all connections (plaintext)
Every connection's start time is kept in `started` (for backoff checks).
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Fault:
    kind: str = "pass"
    after: int = 0
    delay: float = 0.0
    line: bytes = b""
    close: bool = True
    match: bytes = b""
    times: int = 1


@dataclass
class _Conn:
    number: int
    client: socket.socket
    server: socket.socket
    fault: Fault
    down: int = 0  # bytes server -> client
    up: int = 0  # bytes client -> server
    dead: threading.Event = field(default_factory=threading.Event)
    stalled: bool = False
    trace: list = field(default_factory=list)  # ("up"/"down", bytes) in order, for diagnosis
    last_up: int = 0  # size of the client's latest chunk
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.plan: dict[int, Fault] = {}
        self.default = Fault()  # for connections without a plan
        self.started: list[float] = []
        self.conns: list[_Conn] = []
        self.refused = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()

    def start(self) -> "FaultProxy":
        self.sock.listen(32)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for conn in list(self.conns):
            self._kill(conn, reset=False)

    def inject_now(self, line: bytes, close: bool = True) -> None:
        """Send `line` to the client of every open connection now (e.g. `* BYE` during IDLE)."""
        for conn in list(self.conns):
            if conn.dead.is_set():
                continue
            self._to_client(conn, line)
            if close:
                self._kill(conn, reset=False)

    # --- internals ---------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                number = len(self.started) + 1
                self.started.append(time.monotonic())
                conn = _Conn(number, client, server, self.plan.get(number, self.default))
                self.conns.append(conn)
            threading.Thread(target=self._down, args=(conn,), daemon=True).start()
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()

    def _to_client(self, conn: _Conn, data: bytes) -> None:
        with conn.send_lock:
            try:
                conn.client.sendall(data)
            except OSError:
                conn.dead.set()

    def _kill(self, conn: _Conn, reset: bool) -> None:
        conn.dead.set()
        for s in (conn.client, conn.server):
            try:
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _down(self, conn: _Conn) -> None:
        """Server -> client, where the faults act."""
        f = conn.fault
        while not conn.dead.is_set():
            try:
                data = conn.server.recv(65536)
            except OSError:
                break
            if not data:
                break
            conn.trace.append(("down", len(data)))
            if conn.stalled:
                continue
            if f.kind == "cut_reply" and conn.last_up >= f.after:
                self._kill(conn, reset=True)  # the server has the data; its answer never arrives
                return
            if f.kind in ("reset", "stall", "inject") and conn.down + len(data) >= f.after:
                head = data[:max(0, f.after - conn.down)]
                if head:
                    self._to_client(conn, head)
                conn.down += len(head)
                if f.kind == "reset":
                    self._kill(conn, reset=True)
                    return
                if f.kind == "stall":
                    conn.stalled = True
                    continue
                self._to_client(conn, f.line)
                if f.close:
                    self._kill(conn, reset=False)
                    return
                f = conn.fault = Fault()  # injected once; the rest passes
                rest = data[len(head):]
                if rest:
                    self._to_client(conn, rest)
                    conn.down += len(rest)
                continue
            if f.kind == "slow":
                for i in range(0, len(data), 512):
                    time.sleep(f.delay)
                    self._to_client(conn, data[i:i + 512])
            else:
                self._to_client(conn, data)
            conn.down += len(data)
        if not conn.stalled:
            self._kill(conn, reset=False)

    def _up(self, conn: _Conn) -> None:
        """Client -> server; `refuse` answers matching command lines itself."""
        pending = b""
        while not conn.dead.is_set():
            try:
                data = conn.client.recv(65536)
            except OSError:
                break
            if not data:
                break
            conn.up += len(data)
            conn.trace.append(("up", len(data)))
            conn.last_up = len(data)
            if conn.stalled:
                continue
            f = conn.fault
            if f.kind == "refuse":
                pending += data
                data = b""
                while b"\r\n" in pending:
                    line, pending = pending.split(b"\r\n", 1)
                    m = re.match(rb"(\S+) ", line)
                    with self.lock:
                        hit = m and re.search(f.match, line, re.I) and self.refused < f.times
                        if hit:
                            self.refused += 1
                    if hit:
                        self._to_client(conn, m.group(1) + b" " + f.line + b"\r\n")
                    else:
                        data += line + b"\r\n"
                if not data:
                    continue
            try:
                conn.server.sendall(data)
            except OSError:
                break
        self._kill(conn, reset=False)  # the client has gone (a stalled one too)
