"""Named crash points for the kill tests, in the manner of fail-rs and gofail.

Inert unless the environment variable INTAKE_FAILPOINTS names a point, e.g.
`INTAKE_FAILPOINTS=after_commit:2` kills the process with SIGKILL the 2nd time it passes
`after_commit`. Production never sets it.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("INTAKE_FAILPOINTS", "")
_TARGETS: dict[str, int] = {}
for item in filter(None, (x.strip() for x in _SPEC.split(","))):
    name, _, n = item.partition(":")
    _TARGETS[name] = int(n or 1)
_SEEN: dict[str, int] = {}


def hit(name: str) -> None:
    if not _TARGETS or name not in _TARGETS:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] >= _TARGETS[name]:
        os.kill(os.getpid(), signal.SIGKILL)
