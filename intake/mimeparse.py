"""Read raw RFC 5322 bytes into a `Parsed` message: headers, body text, real attachments.

Never raises: empty input, garbage, broken MIME, absurd nesting or huge headers give a
`Parsed` whose `problem` names what is wrong (the triage turns it into `manual`), with time
and memory bounded by the `Limits` in the configuration.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import PurePosixPath, PureWindowsPath

from intake.config import Limits
from intake.htmltext import html_to_text

_POLICY = policy.default
_BOUNDARY_RE = re.compile(rb"boundary\s*=", re.IGNORECASE)
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
_NOT_CASE_FILES = frozenset({"text/vcard", "text/x-vcard", "text/directory"}) | _SIGNATURE_TYPES
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size,
                "sha256": self.sha256}


@dataclass(frozen=True)
class Address:
    display_name: str
    addr: str  # as written (local@domain)

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2].lower()

    @property
    def local(self) -> str:
        return self.addr.rpartition("@")[0]


@dataclass
class Parsed:
    problem: str | None = None  # manual reason when the message cannot be read
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case name -> values
    from_: list[Address] = field(default_factory=list)
    from_defective: bool = False
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    message_id: str | None = None
    references: list[str] = field(default_factory=list)
    content_type: str = "text/plain"
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def has_header(self, name: str) -> bool:
        return name.lower() in self.headers


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text the way mail clients do: declared charset, latin-1 read as windows-1252,
    undeclared 8-bit tried as UTF-8 first."""
    cs = (charset or "").strip().strip('"').lower()
    if cs in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    if cs in ("iso-8859-1", "latin-1", "latin1", "iso8859-1", "iso_8859-1", "windows-1252", "cp1252"):
        return data.decode("cp1252", errors="replace")
    try:
        return data.decode(cs, errors="replace")
    except LookupError:
        return decode_bytes(data, None)


def _fix_surrogates(s: str) -> str:
    """Header text with raw 8-bit bytes arrives with surrogate escapes: decode them properly."""
    if any("\udc80" <= ch <= "\udcff" for ch in s):
        return decode_bytes(s.encode("utf-8", "surrogateescape"), None)
    return s


def one_line(s: str) -> str:
    """Fold a header value to one line: no CR, LF or other control characters."""
    return re.sub(r"\s+", " ", _CTRL_RE.sub(" ", s)).strip()


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A filename with no directory part, no control characters, no leading dots."""
    if name:
        name = _fix_surrogates(name)
        name = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
        name = _CTRL_RE.sub("", name).strip().lstrip(".").strip()
        name = name.replace("/", "_").replace("\\", "_")
    if not name:
        ext = {"application/pdf": ".pdf", "message/rfc822": ".eml", "text/plain": ".txt"}.get(
            content_type, ".bin")
        name = f"bilag-{index}{ext}"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot and len(ext) < 10 else name[:200]
    return name


def _header_values(msg: Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, raw in msg.raw_items():
        try:
            value = str(_POLICY.header_fetch_parse(name, raw))
        except Exception:  # a header the parser chokes on: keep the raw text
            value = str(raw)
        out.setdefault(name.lower(), []).append(one_line(_fix_surrogates(value)))
    return out


def _addresses(msg: EmailMessage, name: str) -> tuple[list[Address], bool]:
    """Addresses of an address header, and whether the header was defective."""
    try:
        h = msg[name]
        if h is None:
            return [], False
        addrs = [
            Address(_fix_surrogates(a.display_name or ""), _fix_surrogates(a.addr_spec))
            for a in h.addresses
            if a.addr_spec and "@" in a.addr_spec
        ]
        return addrs, bool(getattr(h, "defects", ()))
    except Exception:
        return [], True


_MSGID_RE = re.compile(r"<[^<>\s]+>")


def _iter_parts(msg: Message, max_parts: int):
    """Depth-first walk without recursion; yields (part, parent_content_type)."""
    stack: list[tuple[Message, str]] = [(msg, "")]
    count = 0
    while stack:
        part, parent = stack.pop()
        count += 1
        if count > max_parts:
            raise _TooComplex()
        yield part, parent
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                ct = part.get_content_type()
                stack.extend((p, ct) for p in reversed(payload))


class _TooComplex(Exception):
    pass


def _is_inline_resource(part: Message, parent: str, disposition: str | None) -> bool:
    """Images of a signature or layout: referenced by Content-ID, not sent as attachments."""
    if disposition == "attachment":
        return False
    has_cid = part.get("Content-ID") is not None
    if parent == "multipart/related" and has_cid:
        return True
    return part.get_content_maintype() == "image" and (has_cid or disposition == "inline")


def parse(raw: bytes, limits: Limits | None = None) -> Parsed:
    limits = limits or Limits()
    if not raw or not raw.strip():
        return Parsed(problem="empty")
    m = _HEADER_END_RE.search(raw, 0, limits.max_header_bytes + 4)
    header_len = m.start() if m else len(raw)
    if header_len > limits.max_header_bytes:
        return Parsed(problem="header_too_large")
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(raw)
    except RecursionError:
        return Parsed(problem="too_complex")
    except Exception:
        return Parsed(problem="unreadable")
    p = Parsed()
    try:
        p.headers = _header_values(msg)
    except Exception:
        return Parsed(problem="unreadable")
    if not p.headers or not any(h in p.headers for h in ("from", "subject", "date", "message-id",
                                                         "to", "content-type", "received")):
        p.problem = "unreadable"
        return p
    p.from_, p.from_defective = _addresses(msg, "From")
    p.reply_to, _ = _addresses(msg, "Reply-To")
    p.subject = p.header("subject") or ""
    mid = _MSGID_RE.findall(p.header("message-id") or "")
    p.message_id = mid[0] if mid else None
    refs = " ".join((p.header("in-reply-to") or "", p.header("references") or ""))
    p.references = list(dict.fromkeys(_MSGID_RE.findall(refs)))
    try:
        p.content_type = msg.get_content_type()
    except Exception:
        p.content_type = "application/octet-stream"
    if len(_BOUNDARY_RE.findall(raw)) > limits.max_multipart_boundaries:
        p.problem = "too_complex"
        return p
    try:
        _read_body(msg, p, limits)
    except (_TooComplex, RecursionError):
        p.problem = "too_complex"
    except Exception:
        p.problem = "malformed_mime"
    return p


def _read_body(msg: Message, p: Parsed, limits: Limits) -> None:
    texts: list[str] = []
    size = 0
    for part, parent in _iter_parts(msg, limits.max_parts):
        p.parts += 1
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            continue
        try:
            disposition = part.get_content_disposition()
        except Exception:
            disposition = None
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            if size >= limits.max_text_chars:
                continue
            data = part.get_payload(decode=True) or b""
            text = decode_bytes(data, part.get_content_charset())
            if ctype == "text/html":
                text = html_to_text(text, limits.max_text_chars)
            text = text.replace("\r\n", "\n").replace("\r", "\n")[: limits.max_text_chars - size]
            size += len(text)
            texts.append(text)
            continue
        if ctype in _NOT_CASE_FILES or _is_inline_resource(part, parent, disposition):
            continue
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            data = inner.as_bytes(policy=_POLICY) if isinstance(inner, Message) else b""
        else:
            data = part.get_payload(decode=True) or b""
        p.attachments.append(Attachment(
            filename=safe_filename(filename, ctype, len(p.attachments) + 1),
            content_type=ctype,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ))
        del data
    p.text = "\n\n".join(texts)
