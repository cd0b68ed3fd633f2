"""Raw messages at rest, encrypted to an OpenPGP archive key whose private half the daemon does
not have (python-gnupg). Staff with the key read them back (`intake export`, `cases show
--reveal`); retention deletes them N days after a case is closed or redirected.
"""

from __future__ import annotations

import os
from pathlib import Path

import gnupg


class ArchiveError(Exception):
    pass


class Archive:
    def __init__(self, key_file: Path, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        home = self.folder / ".gnupg"
        home.mkdir(exist_ok=True, mode=0o700)
        self.gpg = gnupg.GPG(gnupghome=str(home))
        imported = self.gpg.import_keys(Path(key_file).read_text())
        if not imported.fingerprints:
            raise ArchiveError(f"no OpenPGP public key in {key_file}")
        self.fingerprint = imported.fingerprints[0]

    def path_for(self, content_hash: str) -> Path:
        return self.folder / f"{content_hash[:2]}" / f"{content_hash}.eml.gpg"

    def store(self, content_hash: str, raw: bytes) -> Path:
        """Encrypt and write atomically; the same message twice is the same file."""
        path = self.path_for(content_hash)
        if path.exists():
            return path
        enc = self.gpg.encrypt(raw, self.fingerprint, always_trust=True, armor=True)
        if not enc.ok:
            raise ArchiveError(f"encryption to the archive key failed: {enc.status}")
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(enc.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path


def read(path: Path, gnupghome: str | None = None, passphrase: str | None = None) -> bytes:
    """Decrypt an archived message with the reader's own keyring (the archive key's holder)."""
    g = gnupg.GPG(gnupghome=gnupghome) if gnupghome else gnupg.GPG()
    res = g.decrypt(Path(path).read_bytes(), passphrase=passphrase)
    if not res.ok:
        raise ArchiveError(f"cannot decrypt {path.name}: {res.status}")
    return res.data
