"""The decision core: raw message bytes in, a `Result` out. No network, no database, no clock
beyond `today`, no logging: `intake triage` and the daemon call exactly this.

The pipeline is an ordered list of small named steps (after GNU Mailman's handlers). Each step
may settle the decision; the first that does wins, which gives the contract's precedence:
ignored → manual (unreadable, sender) → manual (structure) → redirect → manual (multiple CPR)
→ incomplete / accepted.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from intake.core import cpr as cprmod
from intake.core import documents, extract, routing, segments, senders
from intake.core.cpr import mask_text
from intake.config import Settings
from intake.core.machine import machine_reason
from intake.core.mimeparse import Attachment, Parsed, parse
from intake.core.replies import Reply, render
from intake.core.rules import Rules, load_rules
from intake.edges.secure import Unwrapped, Unwrapper, authentication_verdict, needs_unwrap
from intake.core.textnorm import normalize

CASE_REF = re.compile(r"\bSME-\d{4}-\d{5,}\b")
DECISIONS = ("accepted", "incomplete", "redirect", "manual", "ignored")
MISSING_ORDER = ("name", "cpr", "examination", "problem", "attachments")
REPLY_KIND = {"accepted": "acknowledgement", "incomplete": "missing_items", "redirect": "redirect"}


@dataclass
class Result:
    decision: str = "manual"
    manual_reason: str | None = None
    redirect_reason: str | None = None
    ignored_reason: str | None = None
    missing: list[str] = field(default_factory=list)
    examinations: list[str] = field(default_factory=list)
    name: str | None = None
    cpr_digits: str | None = None  # internal only: never printed, logged or stored in plaintext
    known_cpr: str | None = None  # masked CPR already on the case (follow-ups)
    distinct_cprs: int = 0  # how many different valid CPR numbers the message holds
    invalid_cpr: str | None = None  # masked
    masked_cpr: str | None = None  # masked number the sender wrote
    phone: str | None = None
    problem: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    message_id: str | None = None
    sender: str | None = None
    municipality: str | None = None
    reply_to: str | None = None
    subject: str = ""
    reply: Reply | None = None
    error: str | None = None  # for internal_error: exception type and code location, no content
    encryption: str | None = None  # "pgp" | "smime"
    signature: str | None = None  # "pgp" | "smime"
    signature_verdict: str | None = None  # "valid" | "invalid" | "unknown_key"
    signer: str | None = None  # fingerprint or certificate subject
    security_problem: str | None = None  # "undecryptable" | "bad_signature"
    authentication: str | None = None  # "passed" | "failed" (trusted Authentication-Results)
    evidence: dict[str, list[dict]] = field(default_factory=dict)  # field -> [{source, rule}]

    @property
    def reason(self) -> str | None:
        """The reason behind the decision, whichever kind it is."""
        return self.manual_reason or self.redirect_reason or self.ignored_reason

    @property
    def cpr(self) -> str | None:
        return cprmod.mask(self.cpr_digits) if self.cpr_digits else self.known_cpr

    @property
    def birth_date(self) -> str | None:
        d = cprmod.birth_date(self.cpr_digits) if self.cpr_digits else None
        return d.isoformat() if d else None

    def evidence_out(self) -> dict:
        """Evidence for the contract's keys (empty lists where nothing was read), masked."""
        ev = {k: [dict(e, rule=mask_text(str(e.get("rule", "")))) for e in self.evidence.get(k, [])]
              for k in ("name", "cpr", "examinations", "problem", "attachments", "decision")}
        for k in ("segments", "documents"):
            if k in self.evidence:
                ev[k] = self.evidence[k]
        if not ev["decision"] and self.reason:
            ev["decision"] = [{"source": "rules", "rule": self.reason}]
        return ev

    def as_dict(self) -> dict:
        """The contract's JSON object (plus a few informative keys); never the CPR number."""
        return {
            "decision": self.decision,
            "manual_reason": self.manual_reason,
            "redirect_reason": self.redirect_reason,
            "ignored_reason": self.ignored_reason,
            "missing": list(self.missing),
            "examinations": list(self.examinations),
            "name": self.name,
            "cpr": self.cpr,
            "birth_date": self.birth_date,
            "phone": self.phone,
            "attachments": [a.as_dict() for a in self.attachments],
            "message_id": self.message_id,
            "sender": self.sender,
            "municipality": self.municipality,
            "reply": self.reply.as_dict() if self.reply else None,
            "evidence": self.evidence_out(),
            "encryption": self.encryption,
            "signature": self.signature_verdict and {"type": self.signature, "verdict": self.signature_verdict,
                                                     "signer": self.signer},
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class Context:
    parsed: Parsed
    settings: Settings
    rules: Rules
    today: dt.date
    result: Result = field(default_factory=Result)
    ignore_lines: frozenset[str] = frozenset()  # our own replies' lines, quoted back to us
    segments: list = field(default_factory=list)  # intake.core.segments.Segment, in order
    units: list[tuple[str, str]] = field(default_factory=list)  # (evidence source, text) read
    docs: list = field(default_factory=list)  # intake.core.documents.Document per attached form
    fields: extract.Fields = field(default_factory=extract.Fields)
    intent: bool = True  # the message asks for something (a referral), set by step_not_a_referral

    def settle(self, decision: str, reason: str | None = None) -> bool:
        self.result.decision = decision
        if decision == "manual":
            self.result.manual_reason = reason
        elif decision == "redirect":
            self.result.redirect_reason = reason
        elif decision == "ignored":
            self.result.ignored_reason = reason
        return True


Step = Callable[[Context], bool]  # True: the decision is settled, stop


def step_readable(ctx: Context) -> bool:
    p = ctx.parsed
    if p.problem in ("empty", "unreadable", "header_too_large"):
        return ctx.settle("manual", p.problem)
    return False


def step_machine(ctx: Context) -> bool:
    reason = machine_reason(ctx.parsed, ctx.settings.own_addresses)
    return ctx.settle("ignored", reason) if reason else False


def step_authentication(ctx: Context) -> bool:
    """Trusted Authentication-Results (RFC 8601) from our own border MTA only, failing closed:
    no trusted header, dmarc=fail, or no SPF/DKIM pass aligned with the one From domain."""
    ids = ctx.settings.security.authserv_ids
    if not ids:
        return False
    p, munis = ctx.parsed, ctx.settings.triage.municipalities
    if senders.from_ambiguous(p) or len(p.from_) > 1:  # which From did the MTA check?
        return ctx.settle("manual", "sender_ambiguous")
    muni = senders.municipality_for(p.from_[0].addr, munis) if p.from_ else None
    verdict, why = authentication_verdict(p.headers.get("authentication-results", []), ids,
                                          p.from_[0].domain if p.from_ else "", muni.domain if muni else None)
    ctx.result.authentication = verdict
    if verdict == "failed":
        ctx.result.evidence.setdefault("decision", []).append({"source": "authentication_results", "rule": why})
        return ctx.settle("manual", "authentication_failed")
    return False


def step_sender(ctx: Context) -> bool:
    if senders.from_ambiguous(ctx.parsed):
        return ctx.settle("manual", "sender_ambiguous")
    addr, muni = senders.sender(ctx.parsed, ctx.settings.triage.municipalities)
    r = ctx.result
    r.sender = addr.addr if addr else None
    if muni is None:
        return ctx.settle("manual", "sender_not_allowed")
    r.municipality = muni.name
    r.reply_to = senders.reply_address(ctx.parsed, ctx.settings.triage.municipalities)
    return False


def step_security(ctx: Context) -> bool:
    """Undecryptable or badly signed mail; where a municipality requires a signature, anything
    but a valid one that covers the message, by a signer configured for that municipality."""
    from intake.edges.secure import signer_bound

    r = ctx.result
    if r.security_problem:
        return ctx.settle("manual", r.security_problem)
    muni = next((m for m in ctx.settings.triage.municipalities if m.name == r.municipality), None)
    if muni is None:
        return False
    signers = muni.pgp_fingerprints or muni.smime_subjects or muni.smime_emails
    if (r.signature_verdict == "valid" and (signers or muni.require_signature)
            and not signer_bound(muni, r.signature, r.signer, r.sender)):
        r.signature_verdict = "wrong_signer"  # a good signature, but not of this municipality
    if muni.require_signature and r.signature_verdict != "valid":
        r.evidence.setdefault("decision", []).append(
            {"source": "signature", "rule": f"{r.signature or 'unsigned'}: {r.signature_verdict or 'no signature'}"})
        return ctx.settle("manual", "wrong_signer" if r.signature_verdict == "wrong_signer" else "signature_required")
    return False


def step_structure(ctx: Context) -> bool:
    if ctx.parsed.problem:
        return ctx.settle("manual", ctx.parsed.problem)
    return False


def _documents(ctx: Context, forms_only: bool) -> list[documents.Document]:
    """Attached PDF/DOCX read as text: those named as forms always, the others only when
    `forms_only` is false (an item is missing from the mail text): case files are not read
    when the mail itself holds the referral."""
    lim = documents.DocumentLimits(max_bytes=ctx.settings.triage.limits.max_document_bytes)
    return [documents.read(name, kind, data, lim) for name, kind, data in ctx.parsed.documents[:10]
            if not forms_only or ctx.rules.form_name.search(name)]


def step_fields(ctx: Context) -> bool:
    """Read every field (never decides): segments first, then name, CPR, phone, examinations,
    problem and case files from the segments that count, each with its evidence."""
    p, rules, r = ctx.parsed, ctx.rules, ctx.result
    cap = ctx.settings.triage.limits.max_read_chars
    text = normalize(p.text[:cap])
    if ctx.ignore_lines:
        text = "\n".join(ln for ln in text.split("\n") if extract.norm_line(ln) not in ctx.ignore_lines)
    ctx.segments = segments.segment(text, p.subject, rules.signature_start, frozenset(ctx.settings.own_addresses),
                                    field_line=rules.field_line)
    subject = normalize(p.subject)
    new = [(s.source, s.text) for s in ctx.segments if s.kind == "new"]
    f = extract.read_fields(new, subject, rules, ctx.today, html=p.html)
    forwarded = [(s.source, s.text) for s in ctx.segments if s.kind == "forwarded"]
    if forwarded and not (f.name and len(f.cpr.valid) == 1 and (f.examinations or f.problem)):
        # the referral is in the forwarded part (a new text that is itself a referral makes
        # the forwarded thread background: it is not read)
        new = new + forwarded
        f = extract.read_fields(new, subject, rules, ctx.today, html=p.html)
    complete = f.name and len(f.cpr.valid) == 1 and f.examinations and f.problem
    ctx.docs = _documents(ctx, forms_only=bool(complete))
    # a form with check boxes: the ticked fields, not its printed list of options, name the examination
    docs = [(f"attachment:{d.name}", normalize(d.field_text if d.checkboxes else d.text)) for d in ctx.docs if d.readable]
    docs += [(f"{extract.FORM_PAGE}{d.name}", normalize(d.text[len(d.field_text):]))
             for d in ctx.docs if d.readable and d.checkboxes]
    if docs:
        f = extract.read_fields(new + docs, subject, rules, ctx.today, html=p.html)
    ctx.units = new + docs
    ctx.fields = f
    r.name = f.name
    r.cpr_digits = f.cpr.valid[0] if len(f.cpr.valid) == 1 else None
    r.distinct_cprs = len(f.cpr.valid)
    r.invalid_cpr = cprmod.mask(f.cpr.invalid[0]) if f.cpr.invalid else None
    r.masked_cpr = f"{f.cpr.masked[0]}-XXXX" if f.cpr.masked else None
    r.phone = f.phone
    r.examinations = f.examinations
    r.problem = f.problem
    r.attachments = list(p.attachments)
    r.evidence = {k: list(v) for k, v in f.evidence.items()}
    if len(p.text) > cap:  # after the fields' evidence, which replaces the dict
        r.evidence["text_cut"] = [{"source": "body", "rule": f"only the first {cap} characters were read"}]
    if r.attachments:
        r.evidence["attachments"] = [{"source": f"attachment:{a.filename}", "rule": a.content_type} for a in r.attachments]
    r.evidence["segments"] = [{"source": s.source, "rule": s.kind} for s in ctx.segments if s.text.strip()]
    for d in ctx.docs:
        r.evidence.setdefault("documents", []).append(
            {"source": f"attachment:{d.name}", "rule": f"{d.kind}: {d.status}" + (f", {d.fields} fields" if d.fields else "")})
    return False


def _new_units(ctx: Context) -> list[tuple[str, str]]:
    """What the sender wrote now, and forwarded messages (not attached documents)."""
    return [(src, t) for src, t in ctx.units if not src.startswith(("attachment:", extract.FORM_PAGE))]


def _subject_unit(ctx: Context) -> list[tuple[str, str]]:
    """The subject as a unit to read, unless it is a reply's: that is the thread's subject
    ("SV: Camilla – KF eller SME?") and says nothing of what this message asks."""
    subject = normalize(ctx.parsed.subject)
    return [] if segments.REPLY_PREFIX.match(subject) else [("subject", subject)]


def step_withdrawal(ctx: Context) -> bool:
    """Withdrawals and thank-yous are not requests at all: no reply, not even a redirect (a
    withdrawal that names a ressourceforløb is not a portal case)."""
    for src, t in _subject_unit(ctx) + _new_units(ctx):
        m = ctx.rules.not_referral_strong.search(t)
        if m:
            return _not_referral(ctx, src, m.group(0))
    return False


def step_not_a_referral(ctx: Context) -> bool:
    """Questions about a case, extra material, follow-ups to our mail, text that asks for
    nothing: no "missing items" reply (unless the message is itself a complete referral)."""
    rules, r = ctx.rules, ctx.result
    new = _subject_unit(ctx) + _new_units(ctx)
    complete = bool(r.name and r.cpr_digits and r.examinations and r.problem)
    intent = any(rules.referral_intent.search(t) for _s, t in new)
    ctx.intent = intent
    old = next(((src, m.group(0)) for src, t in new for m in [rules.existing_referral.search(t)] if m), None)
    if old and not any(rules.new_referral.search(t) for _s, t in new):
        return _not_referral(ctx, old[0], old[1])  # about a referral sent before
    if complete and intent:
        return False
    for src, t in new:
        m = rules.not_referral_weak.search(t)
        if m:
            return _not_referral(ctx, src, m.group(0))
    if segments.is_reply_to_us(ctx.segments, ctx.parsed.subject, frozenset(ctx.settings.own_addresses), CASE_REF):
        return _not_referral(ctx, "subject", "a reply in one of our threads (follow-up)")
    return False


def _not_referral(ctx: Context, source: str, rule: str) -> bool:
    ctx.result.evidence.setdefault("decision", []).append({"source": source, "rule": f"not_a_referral: {mask_text(rule)[:80]}"})
    return ctx.settle("manual", "not_a_referral")


def step_redirect(ctx: Context) -> bool:
    units = _subject_unit(ctx) + _new_units(ctx)
    # attached forms count, attached case files (history) do not
    units += [(src, t) for src, t in ctx.units if src.startswith("attachment:")
              and ctx.rules.form_name.search(src)]
    found = routing.redirect_reason(units, ctx.rules)
    if not found:
        return False
    reason, ev = found
    ctx.result.evidence.setdefault("decision", []).append(ev)
    kf = [e for e in ctx.result.examinations if e in ctx.rules.klinisk_funktion_examinations]
    if reason in ("rehabiliteringsteam", "loebende_sag") and kf:
        # seed 004, § 1, stk. 3: in these cases specialist statements come only from Klinisk
        # Funktion; both reasons fit, and the contract's precedence puts klinisk_funktion first
        reason = "klinisk_funktion"
        ctx.result.evidence["decision"].append(
            {"source": "rules", "rule": "specialist examination asked for in a case Klinisk Funktion covers: " + ", ".join(kf)})
    return ctx.settle("redirect", reason)


def step_multiple_cpr(ctx: Context) -> bool:
    if ctx.result.distinct_cprs > 1:
        ctx.result.evidence.setdefault("decision", []).append(
            {"source": "body", "rule": f"{ctx.result.distinct_cprs} different valid CPR numbers"})
        return ctx.settle("manual", "multiple_cpr")
    return False


def _missing(r: Result) -> list[str]:
    have = {
        "name": bool(r.name),
        "cpr": bool(r.cpr_digits),
        "examination": bool(r.examinations),
        "problem": bool(r.problem),
        "attachments": bool(r.attachments),
    }
    return [k for k in MISSING_ORDER if not have[k]]


def step_uncertain(ctx: Context) -> bool:
    """Precision first: a "missing items" reply only when the engine is sure an item is absent.
    Signs that it is there but unread send the message to a person, with the evidence."""
    r, rules, f = ctx.result, ctx.rules, ctx.fields
    missing = _missing(r)
    if not missing:
        return False
    why: list[dict] = []
    core = [m for m in missing if m != "attachments"]
    for sig in f.signals:
        if sig["field"] in missing:
            why.append(sig)
    unread_docs = [d for d in ctx.docs if not d.readable]
    read_docs = [d for d in ctx.docs if d.readable]
    doc_names = {d.name for d in ctx.docs}
    unread_files = [a for a in r.attachments if a.filename not in doc_names or a.filename in {d.name for d in unread_docs}]
    pointer = next(((src, m.group(0)) for src, t in _new_units(ctx) for m in [rules.pointer.search(t)] if m), None)
    if core and pointer and (unread_files or not r.attachments or ctx.parsed.inline_images):
        why.append({"field": ",".join(core), "source": pointer[0],
                    "rule": f"points to an attachment that was not read: {pointer[1][:60]}"})
    for d in unread_docs:
        if core and (rules.form_name.search(d.name) or pointer):
            why.append({"field": ",".join(core), "source": f"attachment:{d.name}", "rule": f"form could not be read ({d.status})"})
    if len(core) >= 3 and unread_files and not read_docs:
        why.append({"field": ",".join(core), "source": "attachments",
                    "rule": "most items absent from the text while attachments could not be read"})
    if "examination" in core and f.exam_history:
        why.append({"field": "examination", "source": "body",
                    "rule": "only earlier examinations named: " + ", ".join(f.exam_history)})
    words = re.findall(r"[^\W\d_]+", "\n".join(t for _s, t in _new_units(ctx)).lower())
    if len(words) > 40 and sum(w in rules.danish_words for w in words) < len(words) * 0.05:
        why.append({"field": ",".join(missing), "source": "body", "rule": "text in a language the engine does not read"})
    if not any(s.kind == "new" and s.text.strip() for s in ctx.segments) and not any(
            s.kind == "forwarded" and s.text.strip() for s in ctx.segments) and not read_docs:
        why.append({"field": ",".join(missing), "source": "body", "rule": "no text could be read from the message"})
    if "text_cut" in r.evidence:
        why.append({"field": ",".join(missing), "source": "body", "rule": "the text was too long to read whole"})
    for s in ctx.segments:
        if s.kind == "forwarded" and not s.text.strip() and core:
            why.append({"field": ",".join(core), "source": "forwarded", "rule": "a forwarded message with no readable text"})
    if not why:
        # Precision first: "missing items" only to what is plainly a referral.
        if not ctx.intent and not (r.examinations and r.problem):
            return _not_referral(ctx, "body", "no request for an examination: not recognisably a referral")
        if len(core) >= 3 and r.attachments:
            return _not_referral(ctx, "body", "too little of a referral: " + ", ".join(core) + " absent")
        return False
    r.evidence.setdefault("decision", []).extend(why)
    r.missing = []
    return ctx.settle("manual", "uncertain")


def step_complete(ctx: Context) -> bool:
    r = ctx.result
    r.missing = _missing(r)
    r.evidence.setdefault("decision", []).append(
        {"source": "rules", "rule": "missing: " + ", ".join(r.missing) if r.missing else "every item present"})
    return ctx.settle("incomplete" if r.missing else "accepted")


PIPELINE: tuple[tuple[str, Step], ...] = (
    ("readable", step_readable),
    ("machine", step_machine),
    ("authentication", step_authentication),
    ("sender", step_sender),
    ("security", step_security),
    ("structure", step_structure),
    ("fields", step_fields),
    ("withdrawal", step_withdrawal),
    ("redirect", step_redirect),
    ("multiple_cpr", step_multiple_cpr),
    ("not_a_referral", step_not_a_referral),
    ("uncertain", step_uncertain),
    ("complete", step_complete),
)


_REPLY_PREFIXES = re.compile(
    r"^(?:\s*(?:re|sv|aw|vs|fw|fwd|wg|antw)\s*:|\s*\[SME-\d{4}-\d{5,}\]|\s*(?:henvisning modtaget|"
    r"henvisningen mangler oplysninger|sendes via mediconnect proces)\s*(?:\[SME-\d{4}-\d{5,}\])?\s*:)+",
    re.IGNORECASE)


def original_subject(subject: str) -> str:
    """The sender's own subject, without reply prefixes or our earlier reply's subject around it
    (so a thread's subject does not grow with every answer)."""
    return _REPLY_PREFIXES.sub("", subject).strip() or subject.strip()


def _received(parsed: Parsed) -> str | None:
    try:
        d = email.utils.parsedate_to_datetime(parsed.header("date") or "")
    except (TypeError, ValueError, IndexError):
        return None
    return d.strftime("%d.%m.%Y kl. %H:%M") if d else None


_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]{1,15}://|\bwww\.)\S*", re.I)
_HOST_LIKE = re.compile(r"\w\.[^\W\d_]{2,}(?:/|:\d|$)|\d{1,3}(?:\.\d{1,3}){3}")
_DOMAIN_LIKE = re.compile(r"\.(?:dk|com|net|org|eu|io|info|biz|se|no|de|uk|ru|cn|xyz|top|app|link)\b", re.I)
MAX_ECHO_SUBJECT = 80


def greeting_for(parsed: Parsed, rules: Rules) -> str:
    """The sender's display name only when it reads as a person's name (the check the client's
    name passes); anything else (an address, a link, a number, a slogan) gets a fixed greeting."""
    name = normalize(parsed.from_[0].display_name) if parsed.from_ else ""
    name = re.sub(r"\s+", " ", name).strip().strip('"')
    if "," in name:  # "Sørensen, Mette" (Outlook's order)
        last, _, first = name.partition(",")
        name = f"{first.strip()} {last.strip()}"
    clean = extract.clean_name(name, rules) if len(name) <= 60 else None
    return clean if clean and clean == name else "sagsbehandler"


def echo_subject(subject: str) -> str | None:
    """The sender's subject as our reply may repeat it (for their threading): normalised, CPR
    masked, without reply prefixes, URLs, e-mail addresses, domain names or control
    characters, at most 80 characters; None when nothing is left."""
    s = mask_text(original_subject(subject)[:MAX_ECHO_SUBJECT * 4])
    # word by word (linear): a word that holds a link, an address or a domain goes whole
    s = " ".join(w for w in s.split()
                 if not (_URL.search(w) or "@" in w or _DOMAIN_LIKE.search(w) or _HOST_LIKE.search(w)))
    s = re.sub(r"[^\w\s.,:;()/&+'’\-–?!§]", " ", s)
    s = re.sub(r"\s+", " ", s).strip(" -:;,.")
    if len(s) > MAX_ECHO_SUBJECT:
        s = s[: MAX_ECHO_SUBJECT - 1].rsplit(" ", 1)[0] + "…"
    return s or None


def reply_context(result: Result, parsed: Parsed, settings: Settings, rules: Rules,
                  case_ref: str | None = None, due_date: str | None = None,
                  attachment_count: int | None = None) -> dict:
    return {
        "greeting": greeting_for(parsed, rules),
        "name": result.name,
        "cpr": result.cpr,
        "invalid_cpr": result.invalid_cpr,
        "masked_cpr": result.masked_cpr,
        "examinations": [rules.examination_label(c) for c in result.examinations],
        "attachment_count": len(result.attachments) if attachment_count is None else attachment_count,
        "missing": result.missing,
        "redirect_reason": result.redirect_reason,
        "original_subject": echo_subject(parsed.subject),
        "received": _received(parsed),
        "case_ref": case_ref,
        "due_date": due_date,
        "unit_name": settings.triage.unit_name,
        "from_address": settings.reply_from,
    }


def build_reply(result: Result, parsed: Parsed, settings: Settings, rules: Rules,
                case_ref: str | None = None, due_date: str | None = None,
                attachment_count: int | None = None) -> Reply | None:
    """The reply for this decision, or None (manual, ignored, or no allowed address)."""
    kind = REPLY_KIND.get(result.decision)
    if kind is None or not result.reply_to:
        return None
    ctx = reply_context(result, parsed, settings, rules, case_ref, due_date, attachment_count)
    subject, body = render(kind, ctx, settings.triage.templates_dir)
    refs = list(parsed.references)
    if parsed.message_id and parsed.message_id not in refs:
        refs.append(parsed.message_id)
    return Reply(kind=kind, to=result.reply_to, subject=subject, body=body,
                 in_reply_to=parsed.message_id, references=refs[-20:])


def run_pipeline(parsed: Parsed, settings: Settings, rules: Rules,
                 today: dt.date | None = None, ignore_lines: frozenset[str] = frozenset(),
                 unwrapped: Unwrapped | None = None) -> Result:
    ctx = Context(parsed=parsed, settings=settings, rules=rules, today=today or dt.date.today(),
                  ignore_lines=ignore_lines)
    if unwrapped is not None:
        r = ctx.result
        r.encryption, r.signature, r.signature_verdict = unwrapped.encryption, unwrapped.signature, unwrapped.verdict
        r.signer, r.security_problem = unwrapped.signer, unwrapped.problem
    ctx.result.message_id = parsed.message_id
    ctx.result.subject = parsed.subject
    for _name, step in PIPELINE:
        if step(ctx):
            break
    return ctx.result


def unwrapper_for(settings: Settings) -> Unwrapper:
    """One Unwrapper (gpg handle, keys) per security configuration."""
    sec = settings.security
    if sec._unwrapper is None:
        sec._unwrapper = Unwrapper(sec)
    return sec._unwrapper


def triage(raw: bytes, settings: Settings | None = None, rules: Rules | None = None, *,
           today: dt.date | None = None, case_ref: str | None = None,
           render_reply: bool = True, ignore_lines: frozenset[str] = frozenset()) -> tuple[Result, Parsed]:
    """Decide what to do with one raw message. Never raises for any input bytes.
    `render_reply=False` leaves `reply` empty (the daemon renders it with the case reference)."""
    settings = settings or Settings()
    if rules is None:
        rules = load_rules(settings.triage.rules_file)
    try:
        unwrapped = unwrapper_for(settings).unwrap(raw) if needs_unwrap(raw) else None
        parsed = parse(unwrapped.raw if unwrapped else raw, settings.triage.limits)
        result = run_pipeline(parsed, settings, rules, today, ignore_lines, unwrapped)
        if render_reply:
            result.reply = build_reply(result, parsed, settings, rules, case_ref)
    except RecursionError:
        parsed = Parsed(problem="too_complex")
        result = Result(decision="manual", manual_reason="too_complex")
    except MemoryError:  # the worker's address-space limit: a person looks at it
        parsed = Parsed(problem="too_costly")
        result = Result(decision="manual", manual_reason="too_costly")
    except Exception as e:  # a bug must not lose a message: a person looks at it
        parsed = Parsed(problem="internal_error")
        where = traceback.extract_tb(e.__traceback__)[-1]
        result = Result(decision="manual", manual_reason="internal_error",
                        error=f"{type(e).__name__} at {Path(where.filename).name}:{where.lineno}")
    return result, parsed

