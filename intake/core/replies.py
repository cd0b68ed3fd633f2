"""Render the automatic replies (Jinja2 templates in `templates/`) and build them as e-mail.

Every text that leaves here is masked: nothing CPR-shaped survives in subject or body, and the
subject is one line. Replies carry `Auto-Submitted: auto-replied` (RFC 3834) and thread to the
original with In-Reply-To and References.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from functools import lru_cache
from pathlib import Path

import jinja2

from intake.core.cpr import mask_strict
from intake.core.mimeparse import one_line
from intake.resources import templates_dir

KINDS = ("acknowledgement", "missing_items", "redirect", "reminder", "closed_unanswered", "digest")
REPLY_KINDS = ("acknowledgement", "missing_items", "redirect")  # answers to a message (RFC 3834)
_DEFAULTS = {"original_subject": None, "received": None, "case_ref": None, "due_date": None,
             "name": None, "cpr": None, "greeting": "sagsbehandler"}
MAX_SUBJECT = 180


@dataclass
class Reply:
    kind: str
    to: str
    subject: str
    body: str
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "headers": {
                "Auto-Submitted": "auto-replied",
                "In-Reply-To": self.in_reply_to,
                "References": " ".join(self.references) or None,
            },
        }

    def to_email(self, from_address: str, from_name: str, message_id: str) -> Message:
        """The reply as a MIME message (the legacy API: a third of the cost of EmailMessage)."""
        msg = MIMEText(self.body, "plain", "utf-8")
        msg["From"] = email.utils.formataddr((from_name, from_address), charset="utf-8")
        msg["To"] = self.to
        msg["Subject"] = self.subject if self.subject.isascii() else Header(self.subject, "utf-8")
        msg["Date"] = email.utils.formatdate(localtime=True)
        msg["Message-ID"] = message_id
        if self.in_reply_to:
            msg["In-Reply-To"] = self.in_reply_to
        if self.references:
            msg["References"] = " ".join(self.references)
        msg["Auto-Submitted"] = "auto-replied" if self.kind in REPLY_KINDS else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        return msg


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=False,  # plain text mail, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=False,
    )


# What a reply may repeat from the incoming message (the sender's name for the greeting, the
# client's name, the sender's subject) is checked once more here, where the text leaves:
# a person's name is 2-6 words of letters (a hyphen or apostrophe inside a word, an initial's
# dot), and an echoed subject holds no link, address, domain name or IP address.
_PERSON_WORD = r"(?:(?:[^\W\d_]\.){1,3}|[^\W\d_]+(?:[-'’][^\W\d_]+)*\.?)"
_PERSON = re.compile(rf"{_PERSON_WORD}(?: {_PERSON_WORD}){{1,5}}")
_LINKISH = re.compile(
    r"\b[a-z][a-z0-9+.-]{0,15}://\S*"  # scheme://…
    r"|\b(?:mailto|tel|sms|data|javascript|file|callto|sip|skype|ftp)\s*:\S*"
    r"|\bwww\d?\.\S*"
    r"|\S*@\S*"
    r"|(?<![\w.])[\w-]{2,}(?:\.[\w-]+)*\.[^\W\d_]{2,24}\b(?:[/:?#]\S*)?"  # bit.ly/x, evil.example
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b(?:[/:?#]\S*)?",  # 203.0.113.7/login
    re.IGNORECASE)
MAX_ECHO = 200


def _person(value: str | None) -> str | None:
    if not value or len(value) > 60:
        return None
    return value if _PERSON.fullmatch(value) else None


def _echo(value: str | None) -> str | None:
    if not value:
        return None
    s = mask_strict(value[:MAX_ECHO])
    s = _LINKISH.sub(" ", s)
    s = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in s)).strip(" -:;,.")
    return s or None


def _safe_context(context: dict) -> dict:
    context = dict(context)
    if context.get("greeting") != "sagsbehandler" and not _person(context.get("greeting")):
        context["greeting"] = "sagsbehandler"
    if context.get("name") is not None and not _person(context["name"]):
        context["name"] = None
    if "original_subject" in context:
        context["original_subject"] = _echo(context["original_subject"])
    return context


def _clean_subject(s: str) -> str:
    s = one_line(mask_strict(s))
    return s if len(s) <= MAX_SUBJECT else s[: MAX_SUBJECT - 1].rstrip() + "…"


def render(kind: str, context: dict, folder: Path | None = None) -> tuple[str, str]:
    """(subject, body) of reply `kind`, masked. `context` keys: see the templates."""
    if kind not in KINDS:
        raise ValueError(f"unknown reply kind {kind!r}")
    env = _environment(str(folder or templates_dir()))
    tmpl = env.get_template(f"{kind}.txt.j2")
    context = _safe_context({**_DEFAULTS, **context})
    ctx = tmpl.new_context(dict(context))
    subject = "".join(tmpl.blocks["subject"](ctx))
    body = tmpl.render(context)
    lines = [ln.rstrip() for ln in mask_strict(body).strip("\n").split("\n")]
    return _clean_subject(subject), re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
