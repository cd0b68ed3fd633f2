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


@dataclass
class PgpSigner:
    gpg: gnupg.GPG  # its own keyring (secret key)
    fpr: str


def add_pgp_signer(world: PgpWorld, name: str, email: str) -> PgpSigner:
    """Another partner's key (e.g. another municipality's), whose public half the unit has."""
    home = Path(tempfile.mkdtemp(prefix="gpgs", dir="/tmp"))
    home.chmod(0o700)
    g = gnupg.GPG(gnupghome=str(home))
    key = g.gen_key(g.gen_key_input(key_type="EDDSA", key_curve="ed25519", name_real=name, name_email=email,
                                    no_protection=True, expire_date=0))
    assert key.fingerprint, key.stderr
    world.unit.import_keys(g.export_keys(key.fingerprint))
    world.unit.trust_keys([key.fingerprint], "TRUST_FULLY")
    g.import_keys(world.unit.export_keys(world.unit_fpr))
    g.trust_keys([world.unit_fpr], "TRUST_FULLY")
    return PgpSigner(g, key.fingerprint)


def clearsigned(signer_gpg: gnupg.GPG, fpr: str, text: str) -> str:
    """`text` as an inline clear-signed block (gpg --clearsign)."""
    data = signer_gpg.sign(text.encode("utf-8"), keyid=fpr, clearsign=True).data
    assert data, "clearsign failed"
    return data.decode("utf-8")


def plain_mail(body: str, from_: str = "Mette <mette.soerensen@aalborg.dk>", message_id: str = "<cs@aalborg.dk>",
               extra_headers: str = "") -> bytes:
    """A one-part text/plain mail with this body, as a mail client writes an inline-signed one."""
    return ("From: " + from_ + "\r\nTo: socialmedicin@rn.dk\r\nSubject: Henvisning\r\n"
            "Message-ID: " + message_id + "\r\n" + extra_headers + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")).encode("utf-8")


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


def pgp_mime_encrypted(world: PgpWorld, raw: bytes, sign: bool = True, to: str | None = None,
                       signer: PgpSigner | None = None) -> bytes:
    outer, entity = split_referral(raw)
    g, fpr = (signer.gpg, signer.fpr) if signer else (world.sender, world.muni_fpr)
    enc = g.encrypt(entity, to or world.unit_fpr, sign=fpr if sign else None, always_trust=True, armor=True)
    assert enc.ok, enc.status
    return (outer + b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
            b'protocol="application/pgp-encrypted"; boundary="enc"\r\n\r\n'
            b"--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
            b'--enc\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
            + str(enc).encode() + b"\r\n--enc--\r\n")


def pgp_mime_signed(world: PgpWorld, raw: bytes, tamper: bool = False, signer: PgpSigner | None = None) -> bytes:
    outer, entity = split_referral(raw)
    g, fpr = (signer.gpg, signer.fpr) if signer else (world.sender, world.muni_fpr)
    sig = g.sign(entity, keyid=fpr, detach=True)
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
    ca_key: rsa.RSAPrivateKey | None = None


def _cert(subject: str | x509.Name, key, issuer_name, issuer_key, ca: bool, email: str | None = None,
          eku: list[x509.ObjectIdentifier] | None = None):
    now = dt.datetime.now(dt.timezone.utc)
    name = subject if isinstance(subject, x509.Name) else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if email:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class SmimeSigner:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def smime_signer(world: SmimeWorld, subject: str, email: str | None,
                 eku: list[x509.ObjectIdentifier] | None = None) -> SmimeSigner:
    """A signer certificate from the world's CA. `subject` is an RFC 4514 name; `eku` e.g.
    [ExtendedKeyUsageOID.SERVER_AUTH] for a certificate not meant for e-mail."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name.from_rfc4514_string(subject, {"serialNumber": NameOID.SERIAL_NUMBER})
    return SmimeSigner(_cert(name, key, world.ca_cert.subject, world.ca_key, False, email, eku), key)


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
    return SmimeWorld(ca, signer, s_key, unit, u_key, folder, ca_key)


def smime_encrypted(world: SmimeWorld, raw: bytes) -> bytes:
    outer, entity = split_referral(raw)
    out = (pkcs7.PKCS7EnvelopeBuilder().set_data(entity).add_recipient(world.unit_cert)
           .encrypt(serialization.Encoding.SMIME, []))
    return outer + crlf(out)


def smime_signed(world: SmimeWorld, raw: bytes, tamper: bool = False, opaque: bool = False,
                 signer: SmimeSigner | None = None) -> bytes:
    outer, entity = split_referral(raw)
    opts = [] if opaque else [pkcs7.PKCS7Options.DetachedSignature]
    cert, key = (signer.cert, signer.key) if signer else (world.signer_cert, world.signer_key)
    out = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
           .add_signer(cert, key, hashes.SHA256())
           .sign(serialization.Encoding.SMIME, opts))
    out = crlf(out)
    if tamper:
        out = out.replace(b"Sociale_akter.pdf", b"Sociale_aktor.pdf")
    return outer + out
