"""Encrypted and signed mail in: OpenPGP (python-gnupg: PGP/MIME RFC 3156 and inline PGP) and
S/MIME (`cryptography` decrypts enveloped data; the OpenSSL command line verifies signatures
against a CA bundle). `unwrap(raw)` returns the inner message to triage, with what was found:
encryption, signature verdict (valid / invalid / unknown_key) and signer.

No network: gpg and openssl run as local processes on local keys.
"""

from __future__ import annotations

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
_PGP_MESSAGE = re.compile(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", re.S)
_PGP_SIGNED = re.compile(rb"-----BEGIN PGP SIGNED MESSAGE-----.*?-----END PGP SIGNATURE-----", re.S)
MAX_LAYERS = 4


@dataclass
class Unwrapped:
    raw: bytes
    encryption: str | None = None  # "pgp" | "smime"
    signature: str | None = None  # "pgp" | "smime"
    verdict: str | None = None  # "valid" | "invalid" | "unknown_key"
    signer: str | None = None  # OpenPGP fingerprint or certificate subject
    problem: str | None = None  # "undecryptable" | "bad_signature"


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
                out.verdict, out.signer = "valid", res.fingerprint
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
        m = _PGP_MESSAGE.search(out.raw)
        if m:
            out.encryption = "pgp"
            res = self.gpg.decrypt(m.group(0), passphrase=self.passphrase) if self.gpg else None
            if res is None or not res.ok:
                out.problem = "undecryptable"
                return
            self._pgp_signature_from(out, res)
            out.raw = out.raw[:m.start()] + res.data + out.raw[m.end():]
            return
        m = _PGP_SIGNED.search(out.raw)
        if m:
            out.signature = "pgp"
            if self.gpg is None:
                out.verdict = "unknown_key"
                return
            _verdict(out, self.gpg.verify(m.group(0)))

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
            content = self._openssl(openssl, ["-CAfile", str(self.cfg.smime_ca_file), "-purpose", "any",
                                              "-signer", str(signer_file)], out.raw)
            if content is None:
                out.verdict, out.problem = "invalid", "bad_signature"
                return False
            out.verdict = "valid"
            out.signer = _subject(signer_file)
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


def _verdict(out: Unwrapped, v) -> None:  # noqa: ANN001 - gnupg.Verify
    """valid / unknown_key (no public key to check with) / invalid (a bad signature)."""
    if v.valid:
        out.verdict, out.signer = "valid", v.fingerprint
    elif (v.status or "").lower() == "no public key" or v.key_status == "no public key":
        out.verdict, out.signer = "unknown_key", v.key_id
    else:
        out.verdict, out.problem = "invalid", "bad_signature"


def _subject(cert_file: Path) -> str | None:
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return cert.subject.rfc4514_string()
    except Exception:
        return None


def authentication_verdict(auth_results: list[str], trusted_ids: list[str]) -> str | None:
    """RFC 8601: from the topmost Authentication-Results header of a trusted authserv-id,
    'failed' when DMARC fails or SPF fails with no DKIM pass; None when nothing is trusted."""
    trusted = {t.lower() for t in trusted_ids}
    for value in auth_results:  # in header order: topmost first
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv not in trusted:
            continue
        results: dict[str, list[str]] = {}
        for method, res in re.findall(r"(?:^|;)\s*([a-z0-9-]+)\s*=\s*([a-z]+)", value.lower()):
            results.setdefault(method, []).append(res)
        if "fail" in results.get("dmarc", []):
            return "failed"
        spf_fail = any(r in ("fail", "softfail", "permerror") for r in results.get("spf", []))
        dkim_pass = "pass" in results.get("dkim", [])
        if spf_fail and not dkim_pass:
            return "failed"
        return "passed"
    return None
