"""Read raw RFC 5322 bytes into a `Parsed` message: headers, body text, real attachments.

Never raises: empty input, garbage, broken MIME, absurd nesting or huge headers give a
`Parsed` whose `problem` names what is wrong (the triage turns it into `manual`), with time
and memory bounded by the `Limits` in the configuration.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import errors, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import PurePosixPath, PureWindowsPath

from intake.core import bigparts
from intake.config import Limits
from intake.core.cpr import mask_text
from intake.core.documents import kind_of
from intake.core.htmltext import html_to_text
from intake.core.textnorm import normalize

_POLICY = policy.default
_BOUNDARY_RE = re.compile(rb"boundary\s*=", re.IGNORECASE)
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
_NOT_CASE_FILES = frozenset({"text/vcard", "text/x-vcard", "text/directory"}) | _SIGNATURE_TYPES
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
# A MIME structure field (Content-Type, Content-Disposition, …) of any part, top level or not.
# The stdlib parses these with a recursive-descent parser, several times per part: 400,000
# folded parameters cost minutes. Real ones are well under 2 KB (a 255-character file name
# RFC 2231-encoded twice); a longer one makes the message too complex to read.
_MIME_FIELD_RE = re.compile(rb"^content-[a-z-]{1,40}[ \t]*:", re.IGNORECASE | re.MULTILINE)
MAX_MIME_FIELD_BYTES = 8 * 1024
# The subject as read: a real one is one line (RFC 5322: 998 characters); echoing and reading a
# 250 KB subject would cost quadratic regex time for nothing.
MAX_SUBJECT_CHARS = 2000
# A header value longer than this is not given to the stdlib's full header parser (recursive
# descent, about 2,500 bytes of memory per byte of input: 200 KB of encoded words cost 500 MB);
# its encoded words are decoded by the legacy decoder, and an address header this long is
# defective. Real ones are under 1 KB.
MAX_PARSED_HEADER = 8 * 1024
# A text part whose base64 could not be decoded (the stdlib then hands back the encoded bytes)
# or lost characters: its text is not what the sender wrote.
_BROKEN_BASE64 = (errors.InvalidBase64LengthDefect, errors.InvalidBase64CharactersDefect)


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
    html: bool = False  # some of the text came from an HTML part
    attachments: list[Attachment] = field(default_factory=list)
    inline_images: int = 0  # pictures in the text (logos, or a pasted screenshot: never read)
    # attached forms to read (PDF, DOCX): (safe filename, kind, bytes), up to a size cap
    documents: list[tuple[str, str, bytes]] = field(default_factory=list)

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
    """A filename safe to show, and to write on Linux and on Windows.

    A CPR number in it is masked (`DDMMYY-XXXX`, any separator), like everywhere else. No
    directory part; no control or format characters (C0/C1 controls, bidi overrides such as
    U+202E, zero-width characters), no surrogates, line or paragraph separators; none of the
    characters Windows refuses (`<>:"|?*`, also `/` and `\\`: `_`); no leading dots, no trailing
    dots or spaces; no Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, with or without
    an extension: prefixed with `_`); at most 200 bytes of UTF-8, the extension kept. Nothing
    left: `bilag-<index>` with an extension for the content type.
    """
    import unicodedata

    max_bytes = 200
    drop = ("Cc", "Cf", "Cs", "Zl", "Zp")
    devices = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"} | {
        f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}

    def trim(s: str) -> str:  # leading dots and blanks, trailing dots and blanks
        return re.sub(r"[\s.]+$", "", re.sub(r"^[\s.]+", "", s))

    if name:
        name = _fix_surrogates(name)
        name = "".join(ch for ch in name if unicodedata.category(ch) not in drop)
        name = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
        name = trim(re.sub(r'[<>:"|?*/\\]', "_", name))
        masked = mask_text(name)  # "Journal 120385-1234.pdf": shown, logged as evidence, stored
        if masked != normalize(name):
            name = trim(re.sub(r'[<>:"|?*/\\]', "_", masked))
        if len(name.encode("utf-8")) > max_bytes:
            stem, dot, ext = name.rpartition(".")
            if not (dot and stem and len((dot + ext).encode("utf-8")) <= 16):
                stem, dot, ext = name, "", ""
            room = max_bytes - len((dot + ext).encode("utf-8"))
            stem = trim(stem.encode("utf-8")[:room].decode("utf-8", "ignore"))
            name = stem + dot + ext if stem else ""
    if not name:
        ext = {"application/pdf": ".pdf", "message/rfc822": ".eml", "text/plain": ".txt"}.get(
            content_type, ".bin")
        return f"bilag-{index}{ext}"
    if name.split(".", 1)[0].rstrip(" ").upper() in devices:
        name = "_" + name
    return name


_DECODED_HEADERS = frozenset({"subject", "from", "reply-to", "to", "sender"})


def _header_values(msg: Message) -> dict[str, list[str]]:
    """Every header as one line of text. Only headers a person reads (or that may carry
    RFC 2047 words) go through the full header parser; the rest are taken as written."""
    out: dict[str, list[str]] = {}
    for name, raw in msg.raw_items():
        key = name.lower()
        raw = str(raw)
        if len(raw) > MAX_PARSED_HEADER:  # the full parser would hold ~2,500 bytes per byte
            raw = _cheap_decode(raw) if "=?" in raw else raw
        elif key in _DECODED_HEADERS or "=?" in raw:
            try:
                raw = str(_POLICY.header_fetch_parse(name, raw))
            except Exception:  # a header the parser chokes on: keep the raw text
                pass
        out.setdefault(key, []).append(one_line(_fix_surrogates(raw)))
    return out


def _cheap_decode(raw: str) -> str:
    """RFC 2047 words decoded by the legacy (regular-expression) decoder: linear, small."""
    try:
        return str(make_header(decode_header(raw)))
    except Exception:
        return raw


def _addresses(msg: EmailMessage, name: str) -> tuple[list[Address], bool]:
    """Addresses of an address header, and whether the header was defective (a header longer
    than any real one is: it is not parsed)."""
    try:
        if any(len(str(v)) > MAX_PARSED_HEADER for k, v in msg.raw_items() if k.lower() == name.lower()):
            return [], True
        h = msg[name]
        if h is None:
            return [], False
        addrs = [
            Address(_fix_surrogates(a.display_name or ""), _fix_surrogates(a.addr_spec))
            for a in h.addresses
            if a.addr_spec and "@" in a.addr_spec
        ]
        defects = [d for d in getattr(h, "defects", ()) if not _eight_bit_display_name(d, addrs)]
        return addrs, bool(defects)
    except Exception:
        return [], True


def _eight_bit_display_name(defect: object, addrs: list[Address]) -> bool:
    """Raw 8-bit text in a display name ("Mette Sørensen <…>": UTF-8 by RFC 6532, or a legacy
    charset) is not a defect of the address: the stdlib flags the bytes, but the addresses
    parse and are ASCII, so who sent it is as clear as ever."""
    return (isinstance(defect, errors.UndecodableBytesDefect)
            and bool(addrs) and all(a.addr.isascii() for a in addrs))


_MSGID_RE = re.compile(r"<[^<>\s]+>")


def _iter_parts(msg: Message, max_parts: int):
    """Depth-first walk without recursion; yields (part, parent_content_type, parent_id,
    embedded): `embedded` is the innermost attached message (message/rfc822) the part is in."""
    stack: list[tuple[Message, str, int, Message | None]] = [(msg, "", 0, None)]
    count = 0
    while stack:
        part, parent, parent_id, embedded = stack.pop()
        count += 1
        if count > max_parts:
            raise _TooComplex()
        yield part, parent, parent_id, embedded
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            ct = _content_type(part)[0]
            stack.extend((p, ct, id(part), p if ct == "message/rfc822" else embedded) for p in reversed(payload))


def _content_type(part: Message) -> tuple[str, dict]:
    """(type, params) parsed once; the stdlib accessors would re-parse the header per call."""
    h = part.get("content-type")
    if h is None:
        return part.get_default_type(), {}
    try:
        ctype = h.content_type
        return (ctype if "/" in ctype else "text/plain"), dict(h.params)
    except Exception:
        return "text/plain", {}


def _disposition(part: Message) -> tuple[str | None, str | None]:
    """(disposition, filename); the filename falls back to Content-Type's `name`."""
    h = part.get("content-disposition")
    if h is None:
        return None, None
    try:
        return h.content_disposition, h.params.get("filename")
    except Exception:
        return None, None


class _TooComplex(Exception):
    pass


def _is_inline_resource(part: Message, parent: str, ctype: str, disposition: str | None) -> bool:
    """Images of a signature or layout: referenced by Content-ID, not sent as attachments."""
    if disposition == "attachment":
        return False
    has_cid = "content-id" in part
    if parent == "multipart/related" and has_cid:
        return True
    return ctype.startswith("image/") and (has_cid or disposition == "inline")


def _oversized_mime_field(raw: bytes, limit: int) -> bool:
    """Whether a Content-* field anywhere (with its folded continuation lines) exceeds `limit`
    bytes. Linear: each field is followed only until it ends or passes the limit."""
    for m in _MIME_FIELD_RE.finditer(raw):
        start = end = m.start()
        while True:
            nl = raw.find(b"\n", end)
            if nl == -1:
                end = len(raw)
                break
            end = nl + 1
            if end - start > limit or raw[end:end + 1] not in (b" ", b"\t"):
                break
        if end - start > limit:
            return True
    return False


def parse(raw: bytes, limits: Limits | None = None) -> Parsed:
    limits = limits or Limits()
    if not raw or not raw.strip():
        return Parsed(problem="empty")
    m = _HEADER_END_RE.search(raw, 0, limits.max_header_bytes + 4)
    header_len = m.start() if m else len(raw)
    if header_len > limits.max_header_bytes:
        return Parsed(problem="header_too_large")
    problem = None
    if len(_BOUNDARY_RE.findall(raw)) > limits.max_multipart_boundaries or _too_many_parts(raw, limits):
        problem = "too_complex"
    elif _oversized_mime_field(raw, MAX_MIME_FIELD_BYTES):
        problem = "too_complex"
    msg = None
    refs: list[bigparts.BodyRef] = []
    if problem is None:
        try:
            skel, refs = bigparts.skeleton(raw, limits.big_message_bytes)
            msg = BytesParser(policy=_POLICY).parsebytes(skel)
            del skel
        except RecursionError:
            problem = "too_complex"
        except Exception:
            problem = "malformed_mime"
    if msg is None:  # still read the headers: machine mail and senders are judged on them
        try:
            msg = BytesParser(policy=_POLICY).parsebytes(raw, headersonly=True)
        except Exception:
            return Parsed(problem="unreadable")
    p = Parsed(problem=problem)
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
    p.subject = (p.header("subject") or "")[:MAX_SUBJECT_CHARS]
    mid = _MSGID_RE.findall(p.header("message-id") or "")
    p.message_id = mid[0] if mid else None
    thread = " ".join((p.header("in-reply-to") or "", p.header("references") or ""))
    p.references = list(dict.fromkeys(_MSGID_RE.findall(thread)))
    try:
        p.content_type = msg.get_content_type()
    except Exception:
        p.content_type = "application/octet-stream"
    if p.problem:
        return p
    try:
        _read_body(msg, p, limits, raw, refs)
    except (_TooComplex, RecursionError):
        p.problem = "too_complex"
    except Exception:
        p.problem = "malformed_mime"
    if p.problem is None and not p.text.strip() and _body_hidden(msg):
        p.problem = "malformed_mime"  # the body was never read: never ask for "everything"
    return p


_HIDING_DEFECTS = ("StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect", "NoBoundaryInMultipartDefect")


def _body_hidden(msg: Message) -> bool:
    """A multipart whose delimiters were not found: its text sits unread in the preamble."""
    try:
        for part in [msg, *(msg.get_payload() if msg.is_multipart() and isinstance(msg.get_payload(), list) else [])]:
            if any(type(d).__name__ in _HIDING_DEFECTS for d in getattr(part, "defects", [])):
                return True
    except Exception:
        return True
    return False


def _ref(part: Message, refs) -> int | None:  # noqa: ANN001
    """The index of a body we cut out (our own reference header, not one the sender wrote)."""
    if not refs or bigparts.REF_HEADER not in part:
        return None
    values = part.get_all(bigparts.REF_HEADER) or []
    return refs.index_of(values[-1]) if values else None


def _payload(part: Message, raw: bytes, refs, limit: int | None = None) -> bytes:  # noqa: ANN001
    """The decoded body of a leaf part, from the parser or (cut-out bodies) from the raw bytes."""
    ref = _ref(part, refs)
    if ref is None:
        data = part.get_payload(decode=True) or b""
        return data if limit is None else data[:limit]
    body = refs[ref]
    cte = str(part.get("content-transfer-encoding", "7bit"))
    return bigparts.read(raw, body, cte, limit if limit is not None else 1 << 62)


_BOUNDARY_VALUE = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)


def _too_many_parts(raw: bytes, limits: Limits) -> bool:
    """Count delimiter lines and RFC 2047 words before the parser builds anything: a tree of
    600,000 parts, or 24,000 encoded words in one header, is refused in milliseconds."""
    if raw.count(b"=?") > limits.max_encoded_words:
        return True
    total = 0
    for m in _BOUNDARY_VALUE.finditer(raw):
        total += raw.count(b"\n--" + (m.group(1) or m.group(2)))
        if total > 2 * limits.max_parts + 2:
            return True
    return False


def _read_body(msg: Message, p: Parsed, limits: Limits, raw: bytes, refs: list) -> None:
    texts: list[tuple[int, str, str]] = []  # (alternative group or own id, content type, text)
    size = 0
    introduced: set[int] = set()
    for part, parent, parent_id, embedded in _iter_parts(msg, limits.max_parts):
        if part.is_multipart():
            continue
        ctype, params = _content_type(part)
        disposition, filename = _disposition(part)
        filename = filename or params.get("name")
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            if size >= limits.max_text_chars:
                continue
            data = _payload(part, raw, refs, limits.max_text_chars * 4)
            if any(isinstance(d, _BROKEN_BASE64) for d in part.defects):
                p.problem = "malformed_mime"  # the text is not what the sender wrote: not read
                return
            text = decode_bytes(data, params.get("charset"))
            if ctype == "text/html":
                text = html_to_text(text, limits.max_text_chars)
            text = text.replace("\r\n", "\n").replace("\r", "\n")[: limits.max_text_chars - size]
            if embedded is not None and id(embedded) not in introduced:
                introduced.add(id(embedded))  # an attached message reads as a forwarded one
                text = _forward_header(embedded) + text
            size += len(text)
            texts.append((parent_id if parent == "multipart/alternative" else id(part), ctype, text))
            continue
        if ctype in _NOT_CASE_FILES:
            continue
        if _is_inline_resource(part, parent, ctype, disposition):
            p.inline_images += ctype.startswith("image/")
            continue
        name = safe_filename(filename, ctype, len(p.attachments) + 1)
        doc_kind = kind_of(name, ctype)
        ref = _ref(part, refs)
        if ref is not None:
            cte = str(part.get("content-transfer-encoding", "7bit"))
            fsize, sha = bigparts.digest(raw, refs[ref], cte)
            if doc_kind and fsize <= limits.max_document_bytes:
                p.documents.append((name, doc_kind, _payload(part, raw, refs, limits.max_document_bytes)))
        else:
            if ctype == "message/rfc822":
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else inner
                data = inner.as_bytes(policy=_POLICY) if isinstance(inner, Message) else b""
            else:
                data = part.get_payload(decode=True) or b""
            fsize, sha = len(data), hashlib.sha256(data).hexdigest()
            if doc_kind and fsize <= limits.max_document_bytes:
                p.documents.append((name, doc_kind, data))
            del data
        p.attachments.append(Attachment(filename=name, content_type=ctype, size=fsize, sha256=sha))
    p.text = "\n\n".join(_one_per_alternative(texts, p))


def _forward_header(inner: Message) -> str:
    def h(name: str) -> str:
        try:
            return one_line(str(inner.get(name, "")))[:300]
        except Exception:
            return ""
    return (f"---------- Videresendt besked ----------\nFra: {h('from')}\nDato: {h('date')}\n"
            f"Emne: {h('subject')}\nTil: {h('to')}\n\n")


def _one_per_alternative(texts: list[tuple[int, str, str]], p: Parsed) -> list[str]:
    """One text per multipart/alternative: the HTML form (it keeps table rows together) when it
    has words, else the plain form; every other text part as it is, in order."""
    chosen: dict[int, tuple[str, str]] = {}
    for key, ctype, text in texts:
        have = chosen.get(key)
        words = len(re.findall(r"[^\W\d_]{2,}", text))
        if have is None or (ctype == "text/html" and words >= 3) or (
                have[0] == "text/html" and len(re.findall(r"[^\W\d_]{2,}", have[1])) < 3):
            chosen[key] = (ctype, text)
    p.html = any(ct == "text/html" for ct, _ in chosen.values())
    return [t for _ct, t in chosen.values()]
