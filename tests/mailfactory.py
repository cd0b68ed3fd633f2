"""Build the project's own test referrals (never the shared samples) with the stdlib e-mail API."""

from __future__ import annotations

import email.utils
from email.header import Header
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

BODY = """Hej Socialmedicinsk Enhed

Hermed henvisning til psykologisk undersøgelse.

Navn: Karen Lund
CPR: 120385-1233
Tlf.: 20 12 34 56

Problemstilling: Det ønskes belyst, hvordan borgerens koncentrationsbesvær påvirker arbejdsevnen.

Sociale og lægelige akter er vedhæftet.

Med venlig hilsen
Mette Sørensen
Jobcenter Aalborg
Tlf. 99 31 42 17
"""

_counter = iter(range(1, 10**9))


def referral(
    body: str = BODY,
    *,
    subject: str = "Henvisning til psykologisk undersøgelse",
    from_: str = "Mette Sørensen <mette.soerensen@aalborg.dk>",
    to: str = "socialmedicin@rn.dk",
    html: str | None = None,
    attachments: list[tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
    message_id: str | None = None,
) -> bytes:
    """A referral as raw bytes. `attachments`: (filename, data, content type)."""
    if attachments is None:
        attachments = [("Sociale_akter.pdf", PDF, "application/pdf")]
    outer = MIMEMultipart("mixed")
    if html is not None and body:
        alt = MIMEMultipart("alternative")
        alt.attach(MIMEText(body, "plain", charset))
        alt.attach(MIMEText(html, "html", charset))
        outer.attach(alt)
    elif html is not None:
        outer.attach(MIMEText(html, "html", charset))
    else:
        outer.attach(MIMEText(body, "plain", charset))
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        part = MIMEApplication(data, _subtype=subtype) if maintype == "application" else MIMEApplication(data)
        if maintype != "application":
            part.replace_header("Content-Type", ctype)
        part.add_header("Content-Disposition", "attachment", filename=name)
        outer.attach(part)
    return _finish(outer, subject, from_, to, headers, message_id)


def _encode(name: str, value: str) -> str:
    if value.isascii():
        return value
    if name.lower() in ("from", "to", "reply-to", "sender", "cc"):
        return email.utils.formataddr(email.utils.parseaddr(value), charset="utf-8")
    return Header(value, "utf-8").encode()


def _finish(msg, subject, from_, to, headers, message_id) -> bytes:
    enc = _encode if not isinstance(msg, EmailMessage) else (lambda _name, value: value)
    msg["From"] = enc("From", from_)
    msg["To"] = to
    msg["Subject"] = enc("Subject", subject)
    msg["Date"] = email.utils.formatdate(1763280000, localtime=False)
    msg["Message-ID"] = message_id or f"<test-{next(_counter)}@aalborg.dk>"
    for k, v in (headers or {}).items():
        msg[k] = enc(k, v)
    return msg.as_bytes()


def plain(body: str, **kw) -> bytes:
    """A single-part text/plain message (no attachments)."""
    msg = EmailMessage()
    msg.set_content(body)
    return _finish(msg, kw.get("subject", "Henvisning"), kw.get("from_", "A B <ab@aalborg.dk>"),
                   "socialmedicin@rn.dk", kw.get("headers"), kw.get("message_id"))


def raw_message(headers: str, body: bytes) -> bytes:
    """Hand-written bytes, for charsets and breakage the stdlib would not produce."""
    return headers.strip("\n").replace("\n", "\r\n").encode("ascii") + b"\r\n\r\n" + body
