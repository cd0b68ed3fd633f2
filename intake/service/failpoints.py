"""Named crash points for the kill tests, in the manner of fail-rs and gofail.

Inert unless the environment variable INTAKE_FAILPOINTS names a point, e.g.
`INTAKE_FAILPOINTS=after_commit:2` kills the process with SIGKILL the 2nd time it passes
`after_commit`. Production never sets it. `after_commit:1:hang` instead stops the thread that
passes it there for good (the watchdog tests: a hung worker).
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("INTAKE_FAILPOINTS", "")
_TARGETS: dict[str, int] = {}
_HANG: set[str] = set()
for item in filter(None, (x.strip() for x in _SPEC.split(","))):
    name, _, n = item.partition(":")
    n, _, action = n.partition(":")
    _TARGETS[name] = int(n or 1)
    if action == "hang":
        _HANG.add(name)
_SEEN: dict[str, int] = {}


def hit(name: str) -> None:
    if not _TARGETS or name not in _TARGETS:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] >= _TARGETS[name]:
        if name in _HANG:
            threading.Event().wait()
        os.kill(os.getpid(), signal.SIGKILL)
