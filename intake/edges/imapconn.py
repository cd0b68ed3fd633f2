"""The IMAP edge (imapclient, blocking: used from a worker thread only).

Connects with implicit TLS or STARTTLS (or plaintext only when explicitly allowed), creates the
triage folders, lists new UIDs, fetches sizes and bodies without setting \\Seen, files a message
(MOVE when offered, else COPY + \\Deleted + UID EXPUNGE) with keywords, and waits with IDLE.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from intake.config import MailboxConfig, read_secret
from intake.edges.tls import client_context

_KEYWORD_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
CONNECTION_ERRORS = (OSError, socket.timeout, IMAPClientError, EOFError)


def keyword(text: str) -> str:
    """An IMAP keyword atom (RFC 3501 flag-keyword): ASCII, no specials."""
    return _KEYWORD_BAD.sub("_", text)[:60]


@dataclass
class NewMessage:
    uid: int
    size: int
    message_id: str | None


class Mailbox:
    def __init__(self, cfg: MailboxConfig, prefer_move: bool = True) -> None:
        self.cfg = cfg
        self.prefer_move = prefer_move
        self.client: IMAPClient | None = None
        self.delimiter = "/"
        self.uidvalidity = 0
        self.keywords_allowed = False
        self.capabilities: set[bytes] = set()

    # --- connection --------------------------------------------------------------------------
    def connect(self) -> None:
        cfg = self.cfg
        ctx = client_context(cfg.ca_file) if cfg.security != "plain" else None
        c = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.security == "tls", ssl_context=ctx,
                       timeout=cfg.timeout_seconds)
        try:
            if cfg.security == "starttls":
                c.starttls(ctx)
            c.login(cfg.username, read_secret(cfg.password_file) or "")
            self.capabilities = set(c.capabilities())
            folders = c.list_folders(directory="", pattern="INBOX")
            if folders and folders[0][1]:
                self.delimiter = folders[0][1].decode() if isinstance(folders[0][1], bytes) else folders[0][1]
        except BaseException:
            _quiet_logout(c)
            raise
        self.client = c

    def close(self) -> None:
        if self.client is not None:
            _quiet_logout(self.client)
            self.client = None

    @property
    def has_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    def server_folder(self, name: str) -> str:
        return name.replace("/", self.delimiter) if self.delimiter else name

    def ensure_folders(self, names: list[str]) -> None:
        c = self._c()
        existing = {f[2] for f in c.list_folders()}
        for name in names:
            server_name = self.server_folder(name)
            if server_name not in existing:
                try:
                    c.create_folder(server_name)
                except IMAPClientError:
                    if not c.folder_exists(server_name):
                        raise
            try:
                c.subscribe_folder(server_name)
            except IMAPClientError:
                pass

    def select(self) -> int:
        info = self._c().select_folder(self.cfg.folder)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        perm = info.get(b"PERMANENTFLAGS", ())
        self.keywords_allowed = b"\\*" in perm
        return self.uidvalidity

    # --- reading -----------------------------------------------------------------------------
    def new_messages(self, after_uid: int) -> list[NewMessage]:
        c = self._c()
        uids = [u for u in c.search(["UID", f"{after_uid + 1}:*"]) if u > after_uid]
        out: list[NewMessage] = []
        for i in range(0, len(uids), self.cfg.fetch_batch):
            batch = uids[i:i + self.cfg.fetch_batch]
            data = c.fetch(batch, ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for uid in batch:
                d = data.get(uid)
                if d is None:  # expunged meanwhile
                    continue
                hdr = d.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"") or b""
                m = re.search(rb"<[^<>\s]+>", hdr)
                out.append(NewMessage(uid, int(d.get(b"RFC822.SIZE", 0)),
                                      m.group(0).decode("ascii", "replace") if m else None))
        return out

    def fetch_many(self, uids: list[int]) -> dict[int, bytes]:
        """Bodies of these messages (without setting \\Seen); expunged ones are absent."""
        if not uids:
            return {}
        data = self._c().fetch(uids, ["BODY.PEEK[]"])
        return {uid: d[b"BODY[]"] for uid, d in data.items() if d.get(b"BODY[]") is not None}

    # --- filing ------------------------------------------------------------------------------
    def set_keywords(self, uids: list[int], keywords: list[str]) -> None:
        if uids and keywords and self.keywords_allowed:
            try:
                self._c().add_flags(uids, [keyword(k) for k in keywords], silent=True)
            except IMAPClientError:
                pass  # a server may refuse keywords (limits): filing matters more

    def present_in(self, folder: str, message_id: str | None) -> bool:
        """Is a message with this Message-ID already in `folder`? (COPY fallback, after a crash)"""
        if not message_id:
            return False
        c = self._c()
        c.select_folder(self.server_folder(folder), readonly=True)
        try:
            return bool(c.search(["HEADER", "Message-ID", message_id]))
        finally:
            c.select_folder(self.cfg.folder)

    def file(self, uids: list[int], folder: str, message_ids: list[str | None]) -> None:
        """Move these messages to `folder`: MOVE (RFC 6851) when offered, else COPY + \\Deleted +
        UID EXPUNGE. `message_ids` names, for messages a crash may have copied already, the
        Message-ID to look for in `folder` first (None: copy without looking)."""
        c = self._c()
        target = self.server_folder(folder)
        if self.prefer_move and b"MOVE" in self.capabilities:
            c.move(uids, target)
            return
        to_copy = [u for u, mid in zip(uids, message_ids) if not self.present_in(folder, mid)]
        if to_copy:
            c.copy(to_copy, target)
        c.add_flags(uids, [b"\\Deleted"], silent=True)
        if b"UIDPLUS" in self.capabilities:
            c.uid_expunge(uids)
        else:
            c.expunge()

    def move_by_message_id(self, src: str, message_id: str, dst: str,
                           add: list[str] = (), remove: list[str] = ()) -> bool:
        """Move the message(s) with this Message-ID from folder `src` to `dst`, changing their
        keywords on the way (`remove` the old decision's, `add` the new one's)."""
        c = self._c()
        c.select_folder(self.server_folder(src))
        try:
            uids = list(c.search(["HEADER", "Message-ID", message_id]))
            if uids and self.keywords_allowed:
                try:
                    if remove:
                        c.remove_flags(uids, [keyword(k) for k in remove], silent=True)
                    if add:
                        c.add_flags(uids, [keyword(k) for k in add], silent=True)
                except IMAPClientError:
                    pass
            if uids:
                self.file(uids, dst, [None] * len(uids))
            return bool(uids)
        finally:
            c.select_folder(self.cfg.folder)

    # --- waiting -----------------------------------------------------------------------------
    def wait(self, seconds: float, stop) -> bool:  # noqa: ANN001 - threading.Event
        """Wait up to `seconds` for new mail (IDLE if offered, else sleep). True if mail may
        have arrived. Returns early when `stop` is set, and when the server has said nothing
        for `timeout_seconds` (imapclient hides a closed socket during IDLE): ending IDLE then
        makes a dead or stalled connection fail loudly, and the caller reconnects."""
        c = self._c()
        deadline = time.monotonic() + seconds
        if not (self.cfg.idle and self.has_idle):
            while time.monotonic() < deadline and not stop.is_set():
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            return True
        c.idle()
        arrived = False
        heard = time.monotonic()
        try:
            while time.monotonic() < deadline and not stop.is_set():
                responses = c.idle_check(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
                now = time.monotonic()
                if responses:
                    heard = now
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses if isinstance(r, tuple)):
                    arrived = True
                    break
                if now - heard > self.cfg.timeout_seconds:
                    break  # silent too long: check the connection with a real command
        finally:
            c.idle_done()
        return arrived

    def _c(self) -> IMAPClient:
        if self.client is None:
            raise ConnectionError("not connected")
        return self.client


def _quiet_logout(c: IMAPClient) -> None:
    try:
        c.logout()
    except Exception:
        try:
            c.shutdown()
        except Exception:
            pass
