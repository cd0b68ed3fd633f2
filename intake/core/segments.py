"""Cut a message's text into ordered segments: what the sender wrote now, signatures and
disclaimers, quoted history, and each forwarded message with its own header block.

Pure: text in, segments out. The field readers and routing read the sender's new text and
forwarded messages (and attached forms), never signatures, disclaimers or the quoted history
of a reply. A signature ends its segment, never the whole message: a forwarder's note
and signature stand above the forwarded referral.

A history block starts at a separator ("-----Oprindelig meddelelse-----", "Videresendt
besked", "Begin forwarded message:"), at an attribution line ("Den … skrev …:"), at an Outlook
header block (Fra:/From: followed by Sendt:/Date: and Til:/Emne:), or at a run of "> " lines.
Whether a block is forwarded or quoted follows the subject of the message above it (VS:/Fw:
forward, SV:/Re: reply); a block from our own address is always history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FORWARD_PREFIX = re.compile(r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:fw|fwd|vs|wg|tr|videresend\w*|fs)\s*:", re.I)
REPLY_PREFIX = re.compile(r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:re|sv|aw|antw|vs\s*sv|ang)\s*:", re.I)

_SEPARATOR = re.compile(
    r"^\s*(?:[-_=*]{2,}\s*)?(?P<kind>oprindelig\s+meddelelse|original\s+message|original\s+meddelelse|"
    r"forwarded\s+message|videresendt\s+(?:besked|meddelelse|e-?mail|mail)|"
    r"start\s+på\s+videresendt\s+(?:besked|meddelelse)|begin\s+forwarded\s+message|"
    r"videresendt\s+af\s+.{1,60})\s*(?:[-_=*]{2,})?\s*:?\s*$", re.I)
_ATTRIBUTION = re.compile(r"^\s*(?:den|on|d\.|am|le)\s.{4,160}\s(?:skrev|wrote|schrieb|a\s+écrit)\b.{0,160}:\s*$", re.I)
_ATTRIBUTION_START = re.compile(r"^\s*(?:den|on)\s.{4,160}\s(?:skrev|wrote)\b", re.I)
_HDR = re.compile(r"^\s*\*?(?P<name>fra|from|sendt|sent|dato|date|til|to|cc|bcc|emne|subject|vedr)\s*\*?\s*:\s*\*?(?P<value>.*)$", re.I)
_FROM_NAMES = frozenset({"fra", "from"})
_DATE_NAMES = frozenset({"sendt", "sent", "dato", "date"})
_TO_SUBJ_NAMES = frozenset({"til", "to", "emne", "subject", "cc"})


@dataclass
class Segment:
    kind: str  # new | signature | quoted | forwarded | attachment
    text: str
    source: str  # evidence source: body | forwarded | quoted | attachment:<name>
    headers: dict[str, str] = field(default_factory=dict)  # a history block's own header block
    depth: int = 0  # 0: the message itself, 1: the first block below it …


@dataclass
class Block:
    start: int  # first line of the block (its separator or header)
    body: int  # first line after the header block
    kind: str  # "forward" (separator says so) | "reply" (attribution, ">") | "header" (Outlook block)
    headers: dict[str, str]


def _header_block(lines: list[str], i: int) -> tuple[int, dict[str, str]] | None:
    """An Outlook/Gmail header block starting at line i: Fra/From first, a date and a Til/Emne
    line among the next few lines. Returns (first line after it, headers)."""
    m = _HDR.match(lines[i])
    if not m or m.group("name").lower() not in _FROM_NAMES:
        return None
    headers = {"from": m.group("value").strip()}
    j, seen = i + 1, {"from"}
    while j < len(lines) and j <= i + 9:
        ln = lines[j]
        h = _HDR.match(ln)
        if h:
            name = h.group("name").lower()
            key = ("date" if name in _DATE_NAMES else "subject" if name in ("emne", "subject", "vedr")
                   else "to" if name in ("til", "to") else name)
            headers[key] = h.group("value").strip()
            seen.add(key)
            j += 1
        elif ln.strip() == "" and len(seen) < 3:
            j += 1
        elif headers and ln.startswith((" ", "\t")) and len(ln.strip()) < 200 and len(seen) < 4:
            j += 1  # a wrapped address list
        else:
            break
    if "date" in seen and ({"to", "subject"} & seen):
        return j, headers
    return None


def find_blocks(lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        sep = _SEPARATOR.match(ln) if len(ln) < 120 else None
        if sep:
            kind = "header" if re.search(r"oprindelig|original", sep.group("kind"), re.I) else "forward"
            j = i + 1
            while j < len(lines) and not lines[j].strip() and j < i + 3:
                j += 1
            hb = _header_block(lines, j) if j < len(lines) else None
            body, headers = hb if hb else (i + 1, {})
            blocks.append(Block(i, body, kind, headers))
            i = body
            continue
        if len(ln) < 400 and (_ATTRIBUTION.match(ln) or (
                _ATTRIBUTION_START.match(ln) and i + 1 < len(lines) and lines[i + 1].rstrip().endswith(":")
                and len(lines[i + 1]) < 160)):
            body = i + 1 if ln.rstrip().endswith(":") else i + 2
            blocks.append(Block(i, body, "reply", {"from": " ".join(lines[i:body])}))
            i = body
            continue
        hb = _header_block(lines, i) if len(ln) < 400 else None
        if hb:
            blocks.append(Block(i, hb[0], "header", hb[1]))
            i = hb[0]
            continue
        if ln.lstrip().startswith(">"):
            j = i
            while j < len(lines) and (lines[j].lstrip().startswith(">") or not lines[j].strip()):
                j += 1
            first = next((x.lstrip("> \t") for x in lines[i:j] if x.lstrip("> \t").strip()), "")
            attribution = lines[i - 1] if i and _ATTRIBUTION_START.match(lines[i - 1]) else first
            blocks.append(Block(i, i, "quote", {"from": attribution[:300]}))
            # a run of ">" lines is one block; what follows is the sender's text again
            blocks.append(Block(j, j, "resume", {}))
            i = j
            continue
        i += 1
    return blocks


def _is_own(headers: dict[str, str], own: frozenset[str]) -> bool:
    sender = headers.get("from", "").lower()
    return any(a in sender for a in own) or "socialmedicinsk enhed" in sender


_FORWARD_NOTE = re.compile(r"videresend|til\s+orientering|se\s+(?:venligst\s+)?(?:nedenfor|nedenstående|herunder|mail(?:en)?\s+nedenfor)|"
                           r"fremsendes|sender\s+(?:hermed\s+)?(?:videre|denne)|forwarding|henvisning\s+(?:fra|nedenfor)", re.I)


_DISCLAIMER = re.compile(
    r"fortrolig|confidential|rette\s+modtager|intended\s+recipient|personoplysning|databeskyttelse|"
    r"slette\s+(?:den|e-?mailen|mailen|beskeden|meddelelsen)|privatlivs|gdpr|virus|sikker\s+(?:e-?)?post|"
    r"digital\s+post|læs\s+om\s+hvordan|sendt\s+fra\s+min", re.I)
_SENTENCE = re.compile(r"^\W{0,3}[^\W\d_].{14,}[.!?]\s*$")


def _is_postscript(s: str) -> bool:
    """A full sentence (not a name, title, address or phone line, not a disclaimer)."""
    if not _SENTENCE.match(s) or "@" in s or len(re.findall(r"\d", s)) > 5 or _DISCLAIMER.search(s):
        return False
    words = s.split()
    return len(words) >= 3 and any(w.isalpha() and w.islower() and len(w) >= 3 for w in words[1:])


def _signature_lines(lines: list[str], signature_start: re.Pattern[str],
                     field_line: re.Pattern[str] | None = None) -> list[tuple[str, int, int]]:
    """Cut a block's lines into ("text" | "signature", start, end) runs. A signature runs from
    "Med venlig hilsen", "Mvh", "-- " … over short lines (names, titles, phone numbers) and
    disclaimers; a full sentence after it that is no disclaimer (a postscript) is the sender's
    text again. One pass over the lines."""
    runs: list[tuple[str, int, int]] = []
    start, i, n = 0, 0, len(lines)
    while i < n:
        if not signature_start.search(lines[i]):
            i += 1
            continue
        if i > start or not runs:
            runs.append(("text", start, i))
        j = i + 1
        while j < n:
            s = lines[j].strip()
            if (_is_postscript(s) and not _DISCLAIMER.search(lines[j - 1])) or (field_line is not None and field_line.match(s)):
                break
            j += 1
        runs.append(("signature", i, j))
        start = i = j
    if start < n or not runs:
        runs.append(("text", start, n))
    return runs


_POINTS_BELOW = re.compile(r"\b(?:nedenfor|nedenstående|herunder|forneden|i\s+tråden|se\s+tråden|videresend\w*)\b", re.I)


def segment(text: str, subject: str, signature_start: re.Pattern[str],
            own_addresses: frozenset[str] = frozenset(), field_line: re.Pattern[str] | None = None) -> list[Segment]:
    """Ordered segments of a message body (see the module docstring)."""
    lines = text.split("\n")
    blocks = find_blocks(lines)
    # (start, end, kind-of-block, headers) spans: the top text, then each block
    spans: list[tuple[int, int, str, dict[str, str]]] = []
    prev_end, prev_kind, prev_headers = 0, "top", {}
    for b in blocks:
        spans.append((prev_end, b.start, prev_kind, prev_headers))
        prev_end, prev_kind, prev_headers = b.body, b.kind, b.headers
    spans.append((prev_end, len(lines), prev_kind, prev_headers))

    out: list[Segment] = []
    above_subject, above_text, above_kind = subject, None, "new"
    depth = 0
    for start, end, bkind, headers in spans:
        chunk = "\n".join(lines[start:end])
        if bkind == "quote":
            out.append(Segment("quoted", chunk, "quoted", dict(headers), depth=depth + 1))
            continue
        if bkind in ("top", "resume"):
            kind = "new"
        else:
            depth += 1
            if _is_own(headers, own_addresses) or above_kind == "quoted":
                kind = "quoted"
            elif _POINTS_BELOW.search(above_text or ""):
                kind = "forwarded"  # "… fremgår af min kollegas mail nedenfor": the sender points to it
            elif bkind == "forward":
                kind = "forwarded"
            elif bkind == "reply":
                kind = "quoted" if not FORWARD_PREFIX.match(above_subject or "") else "forwarded"
            elif FORWARD_PREFIX.match(above_subject or ""):
                kind = "forwarded"
            elif REPLY_PREFIX.match(above_subject or ""):
                kind = "quoted"
            else:  # an edited subject: a short note above, or words that say it is forwarded
                note = (above_text or "").strip()
                kind = "forwarded" if (len(note) < 400 or _FORWARD_NOTE.search(note)) else "quoted"
        source = {"new": "body", "forwarded": "forwarded", "quoted": "quoted"}[kind]
        block_lines = lines[start:end]
        body = ""
        for i, (run, a, b) in enumerate(_signature_lines(block_lines, signature_start, field_line)):
            text_run = "\n".join(block_lines[a:b])
            if run == "signature":
                if text_run.strip():
                    out.append(Segment("signature", text_run, "signature", dict(headers), depth))
            elif text_run.strip() or (kind == "new" and i == 0):
                out.append(Segment(kind, text_run, source, dict(headers), depth))
                body = body or text_run
        if kind != "quoted" or bkind in ("top", "resume"):
            above_subject = headers.get("subject", "") if bkind not in ("top", "resume") else above_subject
            above_text, above_kind = body, kind
        else:
            above_kind = "quoted"
    return out


_LABEL_START = re.compile(r"^\s*(?:[-*•·◦▪►–]\s|\(?\d{1,2}[.)]\s|[^\W\d_][\w .\-/]{0,40}:\s|>)")


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of a paragraph (plain-text mail wraps at 70–100 columns), so
    that a clause is not cut at a line end: a line of 60+ characters that does not end a
    sentence continues on the next line, unless that one starts a list item or a label."""
    lines = text.split("\n")
    out: list[str] = []
    for ln in lines:
        prev = out[-1] if out else ""
        if (len(prev) >= 60 and prev.rstrip()[-1:] not in ".!?:;" and "\t" not in prev
                and ln.strip() and "\t" not in ln and not _LABEL_START.match(ln)):
            out[-1] = prev.rstrip() + " " + ln.lstrip()
        else:
            out.append(ln)
    return "\n".join(out)


def is_reply_to_us(segments: list[Segment], subject: str, own_addresses: frozenset[str],
                   case_ref: re.Pattern[str]) -> bool:
    """A reply in one of our threads: our case reference in the subject, or our mail in its history."""
    if case_ref.search(subject or ""):
        return True
    return any(s.kind == "quoted" and _is_own(s.headers, own_addresses) for s in segments)
