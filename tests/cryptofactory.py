"""Keys, certificates and encrypted/signed referrals made the way a sender would: real gpg
(python-gnupg) and `cryptography`'s S/MIME builders. Never the shared samples."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import gnupg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

OUTER = ("from", "to", "subject", "date", "message-id", "reply-to", "in-reply-to", "references")


def crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def split_referral(raw: bytes) -> tuple[bytes, bytes]:
    """(outer header lines, inner MIME entity) of a plain referral."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    outer = b"".join(f"{k}: {v}\r\n".encode() for k, v in msg.items() if k.lower() in OUTER)
    for k in list(msg.keys()):
        if k.lower() in OUTER or k.lower() == "mime-version":
            del msg[k]
    return outer, crlf(msg.as_bytes())


@dataclass
class PgpWorld:
    unit: gnupg.GPG  # the daemon's keyring: unit secret key + municipality public key
    sender: gnupg.GPG  # the municipality's keyring: its secret key + unit public key
    unit_fpr: str
    muni_fpr: str
    home: Path


def make_pgp_world() -> PgpWorld:
    base = Path(tempfile.mkdtemp(prefix="gpg", dir="/tmp"))  # short: gpg-agent socket paths
    homes = {}
    fprs = {}
    for name, email in (("unit", "socialmedicin@rn.dk"), ("sender", "mette.soerensen@aalborg.dk")):
        home = base / name
        home.mkdir(mode=0o700)
        g = gnupg.GPG(gnupghome=str(home))
        inp = g.gen_key_input(key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH",
                              subkey_curve="cv25519", name_real=name, name_email=email,
                              no_protection=True, expire_date=0)
        key = g.gen_key(inp)
        assert key.fingerprint, key.stderr
        homes[name], fprs[name] = g, key.fingerprint
    homes["unit"].import_keys(homes["sender"].export_keys(fprs["sender"]))
    homes["sender"].import_keys(homes["unit"].export_keys(fprs["unit"]))
    for g, other in ((homes["unit"], fprs["sender"]), (homes["sender"], fprs["unit"])):
        g.trust_keys([other], "TRUST_FULLY")
    return PgpWorld(homes["unit"], homes["sender"], fprs["unit"], fprs["sender"], base / "unit")


def pgp_mime_encrypted(world: PgpWorld, raw: bytes, sign: bool = True, to: str | None = None) -> bytes:
    outer, entity = split_referral(raw)
    enc = world.sender.encrypt(entity, to or world.unit_fpr, sign=world.muni_fpr if sign else None,
                               always_trust=True, armor=True)
    assert enc.ok, enc.status
    return (outer + b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
            b'protocol="application/pgp-encrypted"; boundary="enc"\r\n\r\n'
            b"--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
            b'--enc\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
            + str(enc).encode() + b"\r\n--enc--\r\n")


def pgp_mime_signed(world: PgpWorld, raw: bytes, tamper: bool = False) -> bytes:
    outer, entity = split_referral(raw)
    sig = world.sender.sign(entity, keyid=world.muni_fpr, detach=True)
    assert sig.data, sig.stderr
    if tamper:
        entity = entity.replace(b"Sociale_akter.pdf", b"Sociale_aktor.pdf")
    return (outer + b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha512; "
            b'protocol="application/pgp-signature"; boundary="sig"\r\n\r\n--sig\r\n' + entity +
            b"\r\n--sig\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n"
            + sig.data + b"\r\n--sig--\r\n")


def pgp_inline(world: PgpWorld, headers: str, text: str) -> bytes:
    enc = world.sender.encrypt(text.encode(), world.unit_fpr, always_trust=True, armor=True)
    return crlf(headers.strip().encode() + b"\nContent-Type: text/plain; charset=us-ascii\n\n" + str(enc).encode())


# --- S/MIME -------------------------------------------------------------------------------------

@dataclass
class SmimeWorld:
    ca_cert: x509.Certificate
    signer_cert: x509.Certificate
    signer_key: rsa.RSAPrivateKey
    unit_cert: x509.Certificate
    unit_key: rsa.RSAPrivateKey
    folder: Path


def _cert(subject: str, key, issuer_name, issuer_key, ca: bool, email: str | None = None):
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if email:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_smime_world(folder: Path) -> SmimeWorld:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test OCES CA")])
    ca = _cert("Test OCES CA", ca_key, ca_name, ca_key, True)
    s_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = _cert("Aalborg Kommune Jobcenter", s_key, ca_name, ca_key, False, "mette.soerensen@aalborg.dk")
    u_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unit = _cert("Socialmedicinsk Enhed", u_key, ca_name, ca_key, False, "socialmedicin@rn.dk")
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "unit-cert.pem").write_bytes(unit.public_bytes(pem))
    (folder / "unit-key.pem").write_bytes(u_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return SmimeWorld(ca, signer, s_key, unit, u_key, folder)


def smime_encrypted(world: SmimeWorld, raw: bytes) -> bytes:
    outer, entity = split_referral(raw)
    out = (pkcs7.PKCS7EnvelopeBuilder().set_data(entity).add_recipient(world.unit_cert)
           .encrypt(serialization.Encoding.SMIME, []))
    return outer + crlf(out)


def smime_signed(world: SmimeWorld, raw: bytes, tamper: bool = False, opaque: bool = False) -> bytes:
    outer, entity = split_referral(raw)
    opts = [] if opaque else [pkcs7.PKCS7Options.DetachedSignature]
    out = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
           .add_signer(world.signer_cert, world.signer_key, hashes.SHA256())
           .sign(serialization.Encoding.SMIME, opts))
    out = crlf(out)
    if tamper:
        out = out.replace(b"Sociale_akter.pdf", b"Sociale_aktor.pdf")
    return outer + out
