"""Keep big attachments out of the e-mail parser: parse a skeleton, read large bodies by offset.

The stdlib parser holds a body as a list of lines and then as one string, several times the
size of the raw bytes. For a large message we cut every large leaf body out of the raw bytes
before parsing, leave a header `X-Intake-Body-Ref: N` in its place, and later decode the body
straight from the raw bytes in fixed-size chunks (size and SHA-256 without a full copy).
The parser still decides the structure: we only shorten bodies between delimiter lines.
"""

from __future__ import annotations

import binascii
import hashlib
import quopri
import re
import secrets
from dataclasses import dataclass

REF_HEADER = "X-Intake-Body-Ref"
_BOUNDARY_DECL = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_BLANK = re.compile(rb"\r?\n\r?\n")
_WS = b" \t\r\n"
CHUNK = 1 << 20


@dataclass(frozen=True)
class BodyRef:
    start: int
    end: int


class Refs(list):
    """The bodies cut out of one message, and the secret that marks our own reference headers:
    a reference header the sender wrote into the message is never taken for one of ours."""

    def __init__(self) -> None:
        super().__init__()
        self.token = secrets.token_hex(8)

    def index_of(self, value: object) -> int | None:
        token, _, index = str(value or "").strip().partition("-")
        if token != self.token or not index.isdigit() or len(index) > 6 or int(index) >= len(self):
            return None
        return int(index)


def _delimiters(raw: bytes) -> list[int]:
    """Start offsets of every boundary delimiter line (at the start of a line)."""
    found: set[int] = set()
    for m in _BOUNDARY_DECL.finditer(raw):
        pat = b"--" + (m.group(1) or m.group(2))
        i = raw.find(pat)
        while i != -1:
            if i == 0 or raw[i - 1] == 0x0A:
                found.add(i)
            i = raw.find(pat, i + len(pat))
    return sorted(found)


def skeleton(raw: bytes, threshold: int) -> tuple[bytes, list[BodyRef]]:
    """(bytes to parse, bodies cut out). Messages under `threshold` are returned unchanged."""
    if len(raw) < threshold:
        return raw, Refs()
    top = _BLANK.search(raw)
    if top is None:
        return raw, Refs()
    # Regions where a part's header block begins: after each delimiter line.
    starts = []
    for d in _delimiters(raw):
        nl = raw.find(b"\n", d)
        if nl != -1:
            starts.append((nl + 1, d))
    regions: list[tuple[int, int]] = []  # (header start, region end)
    for i, (s, _d) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(raw)
        regions.append((s, end))
    if not regions:  # a single-part message: the body is everything after the header block
        regions = [(0, len(raw))]
    out: list[bytes] = []
    refs = Refs()
    pos = 0
    piece = max(threshold // 8, 64 * 1024)
    for hs, end in regions:
        m = _BLANK.search(raw, hs, end)
        if m is None or m.start() == hs:  # no header block: leave it to the parser
            continue
        body_start = m.end()
        # the line break before the next delimiter belongs to the delimiter
        body_end = end - 2 if raw[end - 2:end] == b"\r\n" else (end - 1 if raw[end - 1:end] == b"\n" else end)
        if body_end - body_start < piece:
            continue
        out.append(raw[pos:m.start()])
        out.append(f"\r\n{REF_HEADER}: {refs.token}-{len(refs)}".encode())
        out.append(raw[m.start():body_start])
        refs.append(BodyRef(body_start, body_end))
        pos = body_end
    if not refs:
        return raw, Refs()
    out.append(raw[pos:])
    return b"".join(out), refs


def iter_decoded(raw: bytes, ref: BodyRef, cte: str):
    """Yield the decoded body in chunks (base64, quoted-printable, or as is)."""
    view = memoryview(raw)[ref.start:ref.end]
    cte = cte.strip().lower()
    if cte == "base64":
        carry = b""
        for i in range(0, len(view), CHUNK):
            data = carry + bytes(view[i:i + CHUNK]).translate(None, _WS)
            cut = len(data) - len(data) % 4
            carry = data[cut:]
            try:
                yield binascii.a2b_base64(data[:cut])
            except binascii.Error:
                yield data[:cut]  # broken base64: count what arrived, as the parser would
        if carry:
            try:
                yield binascii.a2b_base64(carry + b"=" * (-len(carry) % 4))
            except binascii.Error:
                yield carry
    elif cte == "quoted-printable":
        yield quopri.decodestring(bytes(view))
    else:
        for i in range(0, len(view), CHUNK):
            yield bytes(view[i:i + CHUNK])


def digest(raw: bytes, ref: BodyRef, cte: str) -> tuple[int, str]:
    """(decoded size, sha256 hex) of a cut-out body."""
    h = hashlib.sha256()
    size = 0
    for chunk in iter_decoded(raw, ref, cte):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def read(raw: bytes, ref: BodyRef, cte: str, limit: int) -> bytes:
    """The decoded body, at most `limit` bytes (for a large text part)."""
    parts, size = [], 0
    for chunk in iter_decoded(raw, ref, cte):
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]
