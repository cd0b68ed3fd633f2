"""The IMAP edge (imapclient, blocking: used from a worker thread only).

Connects with implicit TLS or STARTTLS (or plaintext only when explicitly allowed), creates the
triage folders, lists new UIDs, fetches sizes and bodies without setting \\Seen, files a message
(MOVE when offered, else COPY + \\Deleted + UID EXPUNGE, or a guarded EXPUNGE without UIDPLUS)
with keywords when the folder takes them, and waits with IDLE. Folder names follow the server's
personal namespace (prefix, delimiter) and are sent as modified UTF-7.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from intake.config import ConfigError, MailboxConfig
from intake.edges.oauth import AuthFailure, imap_login
from intake.edges.tls import client_context

_KEYWORD_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
CONNECTION_ERRORS = (OSError, socket.timeout, IMAPClientError, EOFError)


def keyword(text: str) -> str:
    """An IMAP keyword atom (RFC 3501 flag-keyword): ASCII, no specials."""
    return _KEYWORD_BAD.sub("_", text)[:60]


class Throttled(ConnectionError):
    """The server refused a sign-in for now (Exchange: `NO [UNAVAILABLE]`, `[THROTTLED]`)."""


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
        self.prefix = ""  # personal namespace prefix, e.g. "INBOX." (NAMESPACE or config)
        self.known_folders: set[str] = set()  # server names that exist (created or listed)
        self.uidvalidity = 0
        self.keywords_allowed = False
        self.capabilities: set[bytes] = set()
        self.renew_at: float | None = None  # time.monotonic() to sign in again (OAuth token expiry)

    # --- connection --------------------------------------------------------------------------
    def connect(self) -> None:
        cfg = self.cfg
        ctx = client_context(cfg.ca_file) if cfg.security != "plain" else None
        c = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.security == "tls", ssl_context=ctx,
                       timeout=cfg.timeout_seconds)
        try:
            if cfg.security == "starttls":
                c.starttls(ctx)
            self.renew_at = imap_login(c, cfg)  # password or OAuth 2.0; AuthFailure if refused
            self.capabilities = set(c.capabilities())
            self.prefix, self.delimiter = folder_naming(c, self.capabilities, cfg.folder_prefix)
        except BaseException as e:
            _quiet_logout(c)
            if isinstance(e, AuthFailure) and is_throttled(e):  # "not now", not a wrong password
                raise Throttled("sign-in refused for now (throttled)") from None
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
        """The server's name for a configured folder ("/" between levels in the config): the
        server's delimiter between levels and its personal namespace prefix in front (INBOX and
        names already under the prefix as they are). imapclient encodes it as modified UTF-7."""
        return server_folder_name(name, self.prefix, self.delimiter)

    def ensure_folders(self, names: list[str]) -> None:
        """Create (and subscribe) the folders not known to exist; cheap for known ones."""
        names = [n for n in names if self.server_folder(n) not in self.known_folders]
        if not names:
            return
        c = self._c()
        existing = {f[2] for f in c.list_folders()}
        self.known_folders |= existing
        for name in names:
            server_name = self.server_folder(name)
            if server_name not in existing:
                try:
                    c.create_folder(server_name)
                except IMAPClientError:
                    if not c.folder_exists(server_name):
                        raise
            self.known_folders.add(server_name)
            try:
                c.subscribe_folder(server_name)
            except IMAPClientError:
                pass

    def select(self) -> int:
        """Select the watched folder. Whether it takes new keywords is read from PERMANENTFLAGS
        (`\\*`): Exchange, and a Dovecot without the ACL right `w`, do not."""
        info = self._c().select_folder(self.server_folder(self.cfg.folder))
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
            c.select_folder(self.server_folder(self.cfg.folder))

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
            self._expunge_only(uids)

    def _expunge_only(self, uids: list[int]) -> None:
        """Plain EXPUNGE (no UIDPLUS) removes every \\Deleted message in the folder. Messages
        someone else marked \\Deleted (a person in a mail client, not yet expunged, perhaps not
        yet triaged) lose the mark for the moment of the EXPUNGE and get it back after: only what
        was filed here goes. Cut off in between, they stay undeleted: nothing is lost."""
        c = self._c()
        ours = set(uids)
        others = [u for u in c.search(["DELETED"]) if u not in ours]
        if others:
            c.remove_flags(others, [b"\\Deleted"], silent=True)
        try:
            c.expunge()
        finally:
            if others:
                c.add_flags(others, [b"\\Deleted"], silent=True)

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
            c.select_folder(self.server_folder(self.cfg.folder))

    # --- waiting -----------------------------------------------------------------------------
    def wait(self, seconds: float, stop, tick=None) -> bool:  # noqa: ANN001 - threading.Event, callable
        """Wait up to `seconds` for new mail (IDLE if offered, else sleep). True if mail may
        have arrived. Returns early when `stop` is set, and when the server has said nothing
        for `timeout_seconds` (imapclient hides a closed socket during IDLE): ending IDLE then
        makes a dead or stalled connection fail loudly, and the caller reconnects. `tick` is
        called about once a second (the systemd watchdog), with the time.monotonic() the server
        was last heard from during IDLE (None while polling)."""
        c = self._c()
        deadline = time.monotonic() + seconds
        if not (self.cfg.idle and self.has_idle):
            while time.monotonic() < deadline and not stop.is_set():
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                if tick is not None:
                    tick(None)
            return True
        c.idle()
        arrived = dead = False
        heard = time.monotonic()
        quick_empty = 0  # idle_check returning nothing at once, again and again: EOF
        try:
            while time.monotonic() < deadline and not stop.is_set():
                step = min(1.0, max(0.05, deadline - time.monotonic()))
                t0 = time.monotonic()
                responses = c.idle_check(timeout=step)
                now = time.monotonic()
                if any(isinstance(r, tuple) and r and r[0] == b"BYE" for r in responses):
                    dead = True  # the server ends the session (an IDLE time limit, a restart)
                    raise ConnectionError("the server ended the session during IDLE (BYE)")
                if responses:
                    heard, quick_empty = now, 0
                elif now - t0 < step / 2:
                    quick_empty += 1
                    if quick_empty >= 3:  # imapclient swallows EOF here: do not spin on it
                        dead = True
                        raise ConnectionError("the server closed the connection during IDLE")
                else:
                    quick_empty = 0
                if tick is not None:
                    tick(heard)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses if isinstance(r, tuple)):
                    arrived = True
                    break
                if now - heard > self.cfg.timeout_seconds:
                    break  # silent too long: check the connection with a real command
        finally:
            if not dead:
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


def folder_naming(c: IMAPClient, capabilities: set[bytes], prefix_override: str | None) -> tuple[str, str]:
    """(prefix, delimiter) of the personal namespace: from NAMESPACE (RFC 2342) when offered,
    else the delimiter LIST reports for INBOX and no prefix. `prefix_override` (the config's
    `folder_prefix`) wins over the server's prefix."""
    prefix, delim = "", None
    if b"NAMESPACE" in capabilities:
        try:
            personal = c.namespace().personal
            if personal:
                prefix, delim = personal[0][0] or "", personal[0][1]
        except IMAPClientError:
            pass
    if not delim:
        folders = c.list_folders(directory="", pattern="INBOX")
        if folders and folders[0][1]:
            delim = folders[0][1]
    if isinstance(delim, bytes):
        delim = delim.decode()
    if isinstance(prefix, bytes):
        prefix = prefix.decode()
    if prefix_override is not None:
        prefix = prefix_override
    return prefix, delim or "/"


def server_folder_name(name: str, prefix: str, delimiter: str) -> str:
    """A configured folder name ("/" between levels) as the server names it."""
    if name.upper() == "INBOX":
        return "INBOX"
    parts = name.split("/")
    if delimiter != "/" and any(delimiter in p for p in parts):
        raise ConfigError(f"folder {name!r}: a level contains the server's hierarchy delimiter {delimiter!r}")
    server = delimiter.join(parts)
    if prefix:
        have = server.upper() if prefix.upper().startswith("INBOX") else server
        want = prefix.upper() if prefix.upper().startswith("INBOX") else prefix
        if not (have.startswith(want) or have + delimiter == want):
            server = prefix + server
    return server


_THROTTLE_WORDS = ("THROTTLED", "[UNAVAILABLE]", "SERVER UNAVAILABLE", "[LIMIT]", "[INUSE]")


def is_throttled(exc: BaseException) -> bool:
    """A refusal that says 'not now' (Exchange: `NO [THROTTLED]`, `NO Server Unavailable. 15`;
    RFC 5530 `[UNAVAILABLE]`, `[LIMIT]`, `[INUSE]`) rather than a broken connection."""
    if isinstance(exc, Throttled):
        return True
    text = " ".join(str(a) for a in getattr(exc, "args", ())).upper()
    return any(w in text for w in _THROTTLE_WORDS)
