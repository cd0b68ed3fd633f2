"""The secret for keyed CPR hashes: read from `store.hmac_key_file`, or for a local SQLite store
created once beside the database (`<db>.hmac-key`, mode 0600), atomically.

Creation never leaves a half-written key and never lets two starters each make their own: the
key is written to a temporary file in the same folder (O_EXCL, 0600), fsynced, and hard-linked
to its name, which fails if the name exists; the loser reads the winner's key. A key shorter
than MIN_KEY_BYTES (or empty) is refused, never used: an HMAC with a guessable key would let
anyone holding the store test CPR numbers against it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from intake.config import ConfigError, Settings

MIN_KEY_BYTES = 32


def load_hmac_key(settings: Settings) -> bytes:
    if settings.store.hmac_key_file:
        return read_key(Path(settings.store.hmac_key_file))
    u = make_url(settings.store.url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        raise ConfigError("store.hmac_key_file is required for a non-SQLite store")
    db = Path(u.database)
    key_file = db.with_name(db.name + ".hmac-key")
    if not key_file.exists():
        create_key(key_file)
    return read_key(key_file)


def read_key(path: Path) -> bytes:
    """The key's bytes (a trailing newline is not part of it); refused when too short."""
    try:
        key = path.read_bytes().rstrip(b"\r\n")
    except OSError as e:
        raise ConfigError(f"cannot read HMAC key file {path}: {e.strerror}") from e
    if len(key) < MIN_KEY_BYTES:
        what = "is empty" if not key else f"holds {len(key)} bytes"
        raise ConfigError(f"HMAC key file {path} {what}; at least {MIN_KEY_BYTES} are required "
                          "(e.g. `openssl rand -hex 32`); refusing a weak key")
    return key


def create_key(key_file: Path) -> None:
    """Write a new key (32 random bytes, hex: the format earlier versions wrote) unless another
    process got there first."""
    folder = key_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, key_file)  # atomic, and never replaces an existing key
        except FileExistsError:
            pass  # another starter won: its key is the key
        except OSError as e:
            raise ConfigError(f"cannot create HMAC key file {key_file}: {e.strerror}; "
                              "set store.hmac_key_file") from e
        fsync_dir(folder)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
