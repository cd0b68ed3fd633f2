"""Who may send referrals and who may receive our replies: configured municipal domains only.

A domain is allowed when it is a municipality's domain or a subdomain of it
(`jobcenter.aalborg.dk`), never a look-alike (`aalborg.dk.example.net`, `evilaalborg.dk`).
Only the address counts, never a display name that looks like an address.
"""

from __future__ import annotations

from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email

from intake.config import Municipality
from intake.core.mimeparse import Address, Parsed


def normalise(addr: str) -> str | None:
    """The address in normal form (IDNA domain, lower-case domain), or None if invalid."""
    try:
        v = validate_email(addr, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return v.normalized


def municipality_for(addr: str, municipalities: list[Municipality]) -> Municipality | None:
    norm = normalise(addr)
    if norm is None:
        return None
    domain = norm.rpartition("@")[2].lower()
    for m in municipalities:
        if domain == m.domain or domain.endswith("." + m.domain):
            return m
    return None


def from_ambiguous(p: Parsed) -> bool:
    """More than one From header field, naming different addresses (RFC 5322 allows one; a
    second is how a message shows a person one sender and a DMARC check another). Identical
    copies (an inner entity's protected headers) are not ambiguous."""
    fields = p.headers.get("from", [])
    if len(fields) < 2:
        return False
    seen = {frozenset(a.strip().lower() for _n, a in getaddresses([f]) if a) for f in fields}
    return len(seen) != 1 or len(next(iter(seen))) != 1


def sender(p: Parsed, municipalities: list[Municipality]) -> tuple[Address | None, Municipality | None]:
    """The one From address and its municipality; (None, None) when From is absent, multiple
    or defective."""
    if len(p.from_) != 1 or p.from_defective:
        return (p.from_[0] if p.from_ else None), None
    a = p.from_[0]
    return a, municipality_for(a.addr, municipalities)


def reply_address(p: Parsed, municipalities: list[Municipality]) -> str | None:
    """Where a reply goes: Reply-To when that address is itself allowed, else From (if allowed)."""
    if len(p.reply_to) == 1 and municipality_for(p.reply_to[0].addr, municipalities):
        return normalise(p.reply_to[0].addr)
    a, muni = sender(p, municipalities)
    if a is not None and muni is not None:
        return normalise(a.addr)
    return None
