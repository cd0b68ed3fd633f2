"""Encrypted and signed mail in: OpenPGP (python-gnupg: PGP/MIME RFC 3156 and inline PGP) and
S/MIME (`cryptography` decrypts enveloped data; the OpenSSL command line verifies signatures
against a CA bundle). `unwrap(raw)` returns the inner message to triage, with what was found:
encryption, signature verdict and signer.

A signature counts only when it covers what is triaged: the whole PGP/MIME or S/MIME signed
entity, the whole encrypted-and-signed content, or an inline block that is the whole body of a
one-part text message. A clear-signed block quoted inside other text is `partial`: not verified,
not a signature of the message. S/MIME signers are checked for e-mail protection
(`-purpose smimesign`) and their certificate must name the From address. Which signer may sign
for which municipality is `signer_bound` (config: `[[triage.municipalities]]`).

No network: gpg and openssl run as local processes on local keys.
"""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

from intake.config import SecurityConfig, read_secret

_BLANK = re.compile(rb"\r?\n\r?\n")
class _Armour:
    """The first armoured block from `begin` to `end`, found with two linear `find`s (a regex
    `BEGIN.*?END` over raw input is quadratic when a message holds many BEGIN lines)."""

    def __init__(self, begin: bytes, end: bytes) -> None:
        self.begin, self.end_marker = begin, end

    def search(self, raw: bytes) -> _Found | None:
        i = raw.find(self.begin)
        if i == -1:
            return None
        j = raw.find(self.end_marker, i + len(self.begin))
        return None if j == -1 else _Found(raw, i, j + len(self.end_marker))


class _Found:
    def __init__(self, raw: bytes, start: int, end: int) -> None:
        self._raw, self._start, self._end = raw, start, end

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self, _n: int = 0) -> bytes:
        return self._raw[self._start:self._end]


_PGP_MESSAGE = _Armour(b"-----BEGIN PGP MESSAGE-----", b"-----END PGP MESSAGE-----")
_PGP_SIGNED = _Armour(b"-----BEGIN PGP SIGNED MESSAGE-----", b"-----END PGP SIGNATURE-----")
MAX_LAYERS = 4


@dataclass
class Unwrapped:
    raw: bytes
    encryption: str | None = None  # "pgp" | "smime"
    signature: str | None = None  # "pgp" | "smime"
    # "valid" | "invalid" | "unknown_key" | "partial" (an inline block that is not the whole
    # body: not verified) | "wrong_signer" (S/MIME certificate that does not name the From address)
    verdict: str | None = None
    signer: str | None = None  # OpenPGP primary key fingerprint or certificate subject (RFC 4514)
    problem: str | None = None  # "undecryptable" | "bad_signature"
    signer_emails: tuple[str, ...] = ()  # S/MIME: the signer certificate's e-mail addresses


def _split(raw: bytes) -> tuple[bytes, bytes]:
    m = _BLANK.search(raw)
    return (raw[:m.start()], raw[m.end():]) if m else (raw, b"")


def _outer_headers(raw: bytes) -> bytes:
    """The top-level header lines, minus the MIME ones (the inner entity brings its own)."""
    head, _ = _split(raw)
    lines, keep = head.replace(b"\r\n", b"\n").split(b"\n"), []
    current: list[bytes] = []
    for ln in lines + [b"X-End: 1"]:
        if ln[:1] in (b" ", b"\t") and current:
            current.append(ln)
            continue
        if current:
            name = current[0].split(b":", 1)[0].strip().lower()
            if not (name.startswith(b"content-") or name == b"mime-version"):
                keep.extend(current)
        current = [ln]
    return b"\r\n".join(keep) + b"\r\n"


_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")


def _with_outer(raw: bytes, entity: bytes) -> bytes:
    """The outer message's headers around an inner MIME entity (decrypted or signed content)."""
    if entity.startswith((b"\r\n", b"\n")):
        entity = b"Content-Type: text/plain; charset=utf-8\r\n" + entity
    elif not _HEADER_LINE.match(entity):  # bare text, no MIME headers of its own
        entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + entity
    return _outer_headers(raw) + b"MIME-Version: 1.0\r\n" + entity


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def _first_part_bytes(raw: bytes, boundary: str) -> bytes | None:
    """The exact bytes of the first body part of a multipart (what a signature covers)."""
    delim = b"--" + boundary.encode()
    _head, body = _split(raw)
    start = body.find(delim)
    if start == -1:
        return None
    start = body.find(b"\n", start) + 1
    end = body.find(b"\n" + delim, start)
    if end == -1:
        return None
    part = body[start:end]
    return part[:-1] if part.endswith(b"\r") else part


_CRYPTO_TYPE = re.compile(rb"^content-type:\s*(?:multipart/(?:encrypted|signed)|application/(?:x-)?pkcs7-mime)",
                          re.IGNORECASE | re.MULTILINE)


def needs_unwrap(raw: bytes) -> bool:
    """Cheap test before any parsing: a crypto content type at the top, or inline PGP."""
    m = _BLANK.search(raw, 0, 256 * 1024)
    return bool(_CRYPTO_TYPE.search(raw, 0, m.start() if m else 256 * 1024)) or b"-----BEGIN PGP " in raw


class Unwrapper:
    def __init__(self, cfg: SecurityConfig) -> None:
        self.cfg = cfg
        self.gpg = None
        if cfg.gnupghome:
            import gnupg

            self.gpg = gnupg.GPG(gnupghome=str(cfg.gnupghome))
            self.gpg.encoding = "utf-8"
        self.passphrase = read_secret(cfg.gpg_passphrase_file) if cfg.gpg_passphrase_file else None

    # --- entry point -------------------------------------------------------------------------
    def unwrap(self, raw: bytes) -> Unwrapped:
        out = Unwrapped(raw)
        for _ in range(MAX_LAYERS):
            try:
                msg = message_from_bytes(out.raw, policy=policy.compat32)
                ctype = msg.get_content_type()
                params = dict((k.lower(), v) for k, v in msg.get_params(header="content-type", failobj=[])[1:])
            except Exception:
                return out
            proto = (params.get("protocol") or "").lower()
            smime_type = (params.get("smime-type") or "").lower()
            if ctype == "multipart/encrypted" and proto == "application/pgp-encrypted":
                if not self._pgp_decrypt_mime(out, msg):
                    return out
            elif ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime") and smime_type in ("enveloped-data", ""):
                if not self._smime_decrypt(out):
                    return out
            elif ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime") and smime_type == "signed-data":
                if not self._smime_verify(out, opaque=True):
                    return out
            elif ctype == "multipart/signed" and proto == "application/pgp-signature":
                self._pgp_verify_mime(out, msg, params.get("boundary", ""))
                return out
            elif ctype == "multipart/signed" and proto in ("application/pkcs7-signature", "application/x-pkcs7-signature"):
                self._smime_verify(out, opaque=False)
                return out
            elif _PGP_MESSAGE.search(out.raw) or _PGP_SIGNED.search(out.raw):
                self._pgp_inline(out)
                return out
            else:
                return out
        return out

    # --- OpenPGP -----------------------------------------------------------------------------
    def _pgp_decrypt_mime(self, out: Unwrapped, msg) -> bool:  # noqa: ANN001
        out.encryption = "pgp"
        parts = msg.get_payload() if msg.is_multipart() else []
        data = parts[1].get_payload(decode=True) if len(parts) >= 2 else None
        if self.gpg is None or not data:
            out.problem = "undecryptable"
            return False
        res = self.gpg.decrypt(data, passphrase=self.passphrase)
        if not res.ok:
            out.problem = "undecryptable"
            return False
        self._pgp_signature_from(out, res)
        out.raw = _with_outer(out.raw, res.data)
        return True

    def _pgp_signature_from(self, out: Unwrapped, res) -> None:  # noqa: ANN001
        """A signature carried inside the encryption (sign + encrypt in one)."""
        if getattr(res, "signature_id", None) or getattr(res, "fingerprint", None) or res.status in ("signature valid",):
            out.signature = "pgp"
            if res.valid:
                out.verdict, out.signer = "valid", _primary_fingerprint(res)
            elif "no public key" in (res.status or "").lower() or getattr(res, "key_status", None):
                out.verdict, out.signer = "unknown_key", res.key_id
            else:
                out.verdict, out.problem = "invalid", "bad_signature"

    def _pgp_verify(self, out: Unwrapped, data: bytes, signature: bytes) -> None:
        out.signature = "pgp"
        if self.gpg is None:
            out.verdict = "unknown_key"
            return
        with tempfile.NamedTemporaryFile(suffix=".asc", delete=False) as f:
            f.write(signature)
            sig_path = f.name
        try:
            _verdict(out, self.gpg.verify_data(sig_path, data))
        finally:
            os.unlink(sig_path)

    def _pgp_verify_mime(self, out: Unwrapped, msg, boundary: str) -> None:  # noqa: ANN001
        parts = msg.get_payload() if msg.is_multipart() else []
        signed = _first_part_bytes(out.raw, boundary)
        if len(parts) < 2 or signed is None:
            out.signature, out.verdict, out.problem = "pgp", "invalid", "bad_signature"
            return
        self._pgp_verify(out, _crlf(signed), parts[1].get_payload(decode=True) or b"")
        out.raw = _with_outer(out.raw, signed)

    def _pgp_inline(self, out: Unwrapped) -> None:
        body = _single_text_body(out.raw)
        whole = body[0].strip().replace(b"\r\n", b"\n") if body else None
        m = _PGP_MESSAGE.search(out.raw)
        if m:
            out.encryption = "pgp"
            res = self.gpg.decrypt(m.group(0), passphrase=self.passphrase) if self.gpg else None
            if res is None or not res.ok:
                out.problem = "undecryptable"
                return
            before = (out.signature, out.verdict, out.signer)
            self._pgp_signature_from(out, res)
            covering = whole is not None and whole == m.group(0).strip().replace(b"\r\n", b"\n")
            if not covering and out.verdict in ("valid", "unknown_key") and before != (out.signature, out.verdict, out.signer):
                # signed text among unsigned text: the signature is not the message's
                if before[1] is not None:  # an outer signature covers all of it
                    out.signature, out.verdict, out.signer = before
                else:
                    out.verdict, out.signer = "partial", None
            out.raw = out.raw[:m.start()] + res.data + out.raw[m.end():]
            return
        if not _PGP_SIGNED.search(out.raw):
            return
        if whole is None or not _one_clearsigned_block(whole):
            if out.verdict is None:  # quoted or surrounded by other text: not the message's signature
                out.signature, out.verdict = "pgp", "partial"
            return
        out.signature, out.signer = "pgp", None
        if self.gpg is None:
            out.verdict = "unknown_key"
            return
        res = self.gpg.decrypt(whole)  # verifies, and gives the signed text as gpg read it
        _verdict(out, res)
        if res.data:  # what is triaged is exactly what was signed (no armor, dash-escapes undone)
            out.raw = _with_outer(out.raw, b"Content-Type: text/plain; charset=" + body[1].encode() +
                                  b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + _crlf(res.data))

    # --- S/MIME ------------------------------------------------------------------------------
    def _smime_decrypt(self, out: Unwrapped) -> bool:
        out.encryption = "smime"
        if not (self.cfg.smime_cert_file and self.cfg.smime_key_file):
            out.problem = "undecryptable"
            return False
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7

        try:
            cert = x509.load_pem_x509_certificate(Path(self.cfg.smime_cert_file).read_bytes())
            key = load_pem_private_key(Path(self.cfg.smime_key_file).read_bytes(), password=None)
            inner = pkcs7.pkcs7_decrypt_smime(_crlf(out.raw), cert, key, [])
        except Exception:
            out.problem = "undecryptable"
            return False
        out.raw = _with_outer(out.raw, inner)
        return True

    def _smime_verify(self, out: Unwrapped, opaque: bool) -> bool:
        """`openssl smime -verify` against the configured CA bundle; the content comes back."""
        out.signature = "smime"
        openssl = shutil.which("openssl")
        if not openssl or not self.cfg.smime_ca_file:
            out.verdict = "unknown_key"
            if opaque:  # the content is inside the signature: take it out without verifying
                content = self._openssl(openssl, ["-noverify"], out.raw) if openssl else None
                if content is None:
                    out.problem = "bad_signature"
                    return False
                out.raw = _with_outer(out.raw, content)
                return True
            self._strip_smime_signature(out)
            return True
        with tempfile.TemporaryDirectory() as tmp:
            signer_file = Path(tmp) / "signer.pem"
            # smimesign: the signer certificate (and its chain) must be fit for e-mail protection
            content = self._openssl(openssl, ["-CAfile", str(self.cfg.smime_ca_file), "-purpose", "smimesign",
                                              "-signer", str(signer_file)], out.raw)
            if content is None:
                out.verdict, out.problem = "invalid", "bad_signature"
                return False
            out.signer, out.signer_emails = _certificate_identity(signer_file)
        # the certificate must be the From address's: else a valid signature of someone else
        sender = _from_addresses(out.raw)
        ok = len(sender) == 1 and sender[0] in out.signer_emails
        out.verdict = "valid" if ok else "wrong_signer"
        out.raw = _with_outer(out.raw, content)
        return True

    @staticmethod
    def _openssl(openssl: str, args: list[str], raw: bytes) -> bytes | None:
        p = subprocess.run([openssl, "smime", "-verify", *args], input=_crlf(raw),
                           capture_output=True, timeout=60)
        return p.stdout if p.returncode == 0 else None

    def _strip_smime_signature(self, out: Unwrapped) -> None:
        msg = message_from_bytes(out.raw, policy=policy.compat32)
        boundary = msg.get_param("boundary") or ""
        signed = _first_part_bytes(out.raw, boundary)
        if signed is not None:
            out.raw = _with_outer(out.raw, signed)


def _single_text_body(raw: bytes) -> tuple[bytes, str] | None:
    """The decoded body and charset of a message that is one text/plain part (or a
    multipart/mixed holding only that part): what an inline signature can cover. None otherwise
    (attachments, alternatives, HTML)."""
    try:
        msg = message_from_bytes(raw, policy=policy.compat32)
        if msg.get_content_type() == "multipart/mixed":
            parts = msg.get_payload()
            if not isinstance(parts, list) or len(parts) != 1:
                return None
            msg = parts[0]
        if msg.is_multipart() or msg.get_content_type() != "text/plain":
            return None
        data = msg.get_payload(decode=True)
        charset = msg.get_content_charset() or "utf-8"
    except Exception:
        return None
    if not isinstance(data, bytes) or not re.fullmatch(r"[a-z0-9_.:-]{1,40}", charset):
        return None
    return data, charset


def _one_clearsigned_block(text: bytes) -> bool:
    """The text is exactly one clear-signed message: it starts with the BEGIN line, ends with the
    END line, and holds no other dash line (signed text escapes its own as "- -----")."""
    lines = text.split(b"\n")
    dashed = [i for i, ln in enumerate(lines) if ln.startswith(b"-") and not ln.startswith(b"- ")]
    return (len(dashed) == 3 and dashed[0] == 0 and dashed[2] == len(lines) - 1
            and lines[0].rstrip() == b"-----BEGIN PGP SIGNED MESSAGE-----"
            and lines[dashed[1]].rstrip() == b"-----BEGIN PGP SIGNATURE-----"
            and lines[-1].rstrip() == b"-----END PGP SIGNATURE-----")


def _primary_fingerprint(v) -> str | None:  # noqa: ANN001 - gnupg.Verify / gnupg.Crypt
    """The primary key's fingerprint (what a partner hands over), also when a subkey signed."""
    return getattr(v, "pubkey_fingerprint", None) or v.fingerprint


def _verdict(out: Unwrapped, v) -> None:  # noqa: ANN001 - gnupg.Verify
    """valid / unknown_key (no public key to check with) / invalid (a bad signature)."""
    if v.valid:
        out.verdict, out.signer = "valid", _primary_fingerprint(v)
    elif (v.status or "").lower() == "no public key" or v.key_status == "no public key":
        out.verdict, out.signer = "unknown_key", v.key_id
    else:
        out.verdict, out.problem = "invalid", "bad_signature"


def _certificate_identity(cert_file: Path) -> tuple[str | None, tuple[str, ...]]:
    """Subject (RFC 4514) and e-mail addresses (SAN rfc822Name, subject emailAddress), lower
    case, of the (first) signer certificate openssl wrote."""
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except Exception:
        return None, ()
    emails = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails += san.get_values_for_type(x509.RFC822Name)
    except Exception:  # no SAN, or a malformed one: it names nobody
        pass
    return cert.subject.rfc4514_string(), tuple(dict.fromkeys(e.strip().lower() for e in emails))


def _from_addresses(raw: bytes) -> list[str]:
    """Every distinct address in every From header field, lower case."""
    try:
        head = message_from_bytes(_split(raw)[0] + b"\r\n\r\n", policy=policy.compat32)
        pairs = email.utils.getaddresses([str(v) for v in head.get_all("From", [])])
    except Exception:
        return []
    return list(dict.fromkeys(a.strip().lower() for _n, a in pairs if a and "@" in a))


# --- who may sign for a municipality -------------------------------------------------------------

_SUBJECT_NAMES = {"serialNumber": "2.5.4.5", "emailAddress": "1.2.840.113549.1.9.1",
                  "organizationIdentifier": "2.5.4.97", "givenName": "2.5.4.42", "SN": "2.5.4.4",
                  "title": "2.5.4.12"}


def subject_attributes(dn: str) -> frozenset[tuple[str, str]]:
    """An RFC 4514 distinguished name as a set of (OID, value) pairs, values compared without
    case and with runs of white space as one. ValueError when it cannot be read."""
    from cryptography import x509

    overrides = {k: x509.ObjectIdentifier(v) for k, v in _SUBJECT_NAMES.items()}
    name = x509.Name.from_rfc4514_string(dn.strip(), overrides)
    return frozenset((a.oid.dotted_string, " ".join(str(a.value).split()).casefold()) for a in name)


def normalise_fingerprint(fpr: str) -> str:
    return re.sub(r"[\s:]", "", fpr).upper().removeprefix("0X")


def signer_bound(muni, signature: str | None, signer: str | None, sender: str | None) -> bool:  # noqa: ANN001
    """Whether a valid signature's signer is one the municipality's config names: an OpenPGP
    primary key fingerprint in `pgp_fingerprints`; for S/MIME a certificate whose subject holds
    every attribute of one of `smime_subjects`, or (the certificate names the From address, which
    a `valid` S/MIME verdict has already checked) a From address listed in `smime_emails`
    (`@domain` for every address at that domain)."""
    if signature == "pgp":
        return bool(signer) and normalise_fingerprint(signer) in {normalise_fingerprint(f) for f in muni.pgp_fingerprints}
    if signature != "smime":
        return False
    addr = (sender or "").strip().lower()
    if addr and any(addr == e or (e.startswith("@") and addr.endswith(e)) for e in muni.smime_emails):
        return True
    if not signer or not muni.smime_subjects:
        return False
    try:
        have = subject_attributes(signer)
    except ValueError:
        return False
    return any(subject_attributes(pattern) <= have for pattern in muni.smime_subjects)


# --- Authentication-Results (RFC 8601) -----------------------------------------------------------

@dataclass
class _MethodResult:
    method: str  # spf, dkim, dmarc, ...
    result: str  # pass, fail, softfail, none, ...
    props: dict[str, str]  # "header.d" -> "aalborg.dk"


def _without_comments(value: str) -> str:
    out, depth, quoted, escaped = [], 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if not depth:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


_SEGMENT = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+')
_PAIR = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')


def _parse_auth_results(value: str) -> tuple[str, list[_MethodResult]]:
    """(authserv-id, method results) of one Authentication-Results header value."""
    segments = _SEGMENT.findall(_without_comments(value))
    if not segments or not segments[0].split():
        return "", []
    authserv = segments[0].split()[0].strip('"').lower()
    results = []
    for seg in segments[1:]:
        pairs = [(k.lower(), v.strip('"')) for k, v in _PAIR.findall(seg)]
        if not pairs:
            continue  # "none"
        method = pairs[0][0].split("/", 1)[0]
        results.append(_MethodResult(method, pairs[0][1].lower(),
                                     {k: v.lower() for k, v in pairs[1:] if "." in k}))
    return authserv, results


def _domain_of(identity: str | None) -> str:
    """The domain of an address or domain, lower case, as IDNA (A-labels) when it can be."""
    d = (identity or "").rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        return d


def _identity(r: _MethodResult) -> str:
    """The domain a method result vouches for."""
    if r.method == "dkim":
        return _domain_of(r.props.get("header.d") or r.props.get("header.i"))
    if r.method == "spf":
        return _domain_of(r.props.get("smtp.mailfrom") or r.props.get("smtp.helo"))
    return _domain_of(r.props.get("header.from"))


def authentication_verdict(auth_results: list[str], trusted_ids: list[str], from_domain: str,
                           org_domain: str | None = None) -> tuple[str, str]:
    """("passed" | "failed", why) from the topmost Authentication-Results header whose
    authserv-id is trusted (our border MTA; it removes forged ones of its own id). Fails closed:
    no trusted header, `dmarc=fail`, or no pass aligned with the From domain → failed.

    Aligned (DMARC's relaxed alignment): the DKIM `header.d` (or `header.i`) or SPF
    `smtp.mailfrom` domain has the same organisational domain as the From domain, where the
    organisational domain is the municipality's configured domain (`org_domain`) for it and its
    subdomains, else the domain itself. A `dmarc=pass` counts when its `header.from` is the From
    domain. A DKIM pass of another domain never offsets a failing SPF."""
    trusted = {t.lower() for t in trusted_ids}
    parsed = None
    for value in auth_results:  # in header order: topmost first
        authserv, results = _parse_auth_results(value)
        if authserv in trusted:
            parsed = results
            break
    if parsed is None:
        return "failed", "no trusted Authentication-Results header"
    from_domain = _domain_of(from_domain)
    org = _domain_of(org_domain)

    def organisational(d: str) -> str:
        return org if org and (d == org or d.endswith("." + org)) else d

    def aligned(d: str) -> bool:
        return bool(d and from_domain) and organisational(d) == organisational(from_domain)

    seen = []
    for r in parsed:
        if r.method in ("spf", "dkim", "dmarc"):
            seen.append(f"{r.method}={r.result}" + (f" {_identity(r)}" if _identity(r) else ""))
        if r.method == "dmarc" and r.result == "fail":
            return "failed", "dmarc=fail"
    for r in parsed:
        if r.result == "pass" and r.method in ("dkim", "spf") and aligned(_identity(r)):
            return "passed", f"{r.method}=pass {_identity(r)}"
        if r.result == "pass" and r.method == "dmarc" and from_domain and _identity(r) == from_domain:
            return "passed", f"dmarc=pass {from_domain}"
    return "failed", "no pass aligned with the From domain (" + ", ".join(seen or ["no results"]) + ")"
