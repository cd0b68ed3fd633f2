"""Throwaway local mail servers for the tests, the benchmarks and the demo (never production).

`Dovecot` runs a private dovecot instance (IMAPS + IMAP/STARTTLS on free loopback ports,
certificates from trustme, mail in a temporary folder). `SmtpSink` runs aiosmtpd with STARTTLS
and keeps every message it accepts. Both need the test extras (`pip install -e '.[test]'`)
and the `dovecot-imapd` Debian package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

DOVECOT_BIN = shutil.which("dovecot") or "/usr/sbin/dovecot"


def stop_group(proc: subprocess.Popen, signal_group: bool) -> None:
    """SIGTERM the server (its whole process group, or only its master, which then stops its
    own services), SIGKILL after 10 s, then wait up to 5 s for the group to leave and SIGKILL
    what is left. `proc` must have been started with start_new_session=True."""
    try:
        if signal_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # children leave after the master
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class TestCA:
    """A trustme CA with one server certificate for localhost / 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server-cert.pem"
        self.key_file = folder / "server-key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert.private_key_pem.write_to_path(str(self.key_file))
        with open(self.cert_file, "wb") as f:
            for blob in self.cert.cert_chain_pems:
                f.write(blob.bytes())
        os.chmod(self.key_file, 0o600)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.cert.configure_cert(ctx)
        return ctx


_DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = {auth_mechanisms}
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
mail_location = maildir:{base}/mail/%u/Maildir
mail_uid = {uid}
mail_gid = {gid}
namespace inbox {{
  inbox = yes
  separator = /
}}
{passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
  imap_idle_notify_interval = 1 secs
}}
{extra_conf}
"""
_PASSWD_FILE_PASSDB = """passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}"""


@dataclass
class Dovecot:
    """A private Dovecot; `users` maps user name to password.

    Variants for tests: `passdb` replaces the passwd-file passdb block (e.g. `driver = oauth2`),
    `auth_mechanisms` the SASL list, and `extra_conf` is appended last (later settings win).
    """

    base: Path
    ca: TestCA
    users: dict[str, str] = field(default_factory=lambda: {"socialmedicin": "test-password"})
    passdb: str | None = None
    auth_mechanisms: str = "plain login"
    extra_conf: str = ""
    imap_port: int = 0
    imaps_port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> "Dovecot":
        if not Path(DOVECOT_BIN).exists():
            raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd)")
        self.base.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            uid, gid = user.pw_uid, user.pw_gid
            login_user = "dovenull" if _has_user("dovenull") else "nobody"
            internal_user = "dovecot" if _has_user("dovecot") else "nobody"
            for path in (self.base / "mail",):
                os.chown(path, uid, gid)
            os.chmod(self.base, 0o755)
        else:
            uid, gid = os.getuid(), os.getgid()
            login_user = internal_user = pwd.getpwuid(uid).pw_name
        (self.base / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        self.imap_port = self.imap_port or free_port()
        self.imaps_port = self.imaps_port or free_port()
        conf = self.base / "dovecot.conf"
        conf.write_text(_DOVECOT_CONF.format(
            base=self.base, cert=self.ca.cert_file, key=self.ca.key_file, uid=uid, gid=gid,
            login_user=login_user, internal_user=internal_user,
            imap_port=self.imap_port, imaps_port=self.imaps_port,
            passdb=self.passdb if self.passdb is not None else _PASSWD_FILE_PASSDB.replace("{base}", str(self.base)),
            auth_mechanisms=self.auth_mechanisms, extra_conf=self.extra_conf))
        self.proc = subprocess.Popen([DOVECOT_BIN, "-F", "-c", str(conf)], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.imaps_port)
        except TimeoutError:
            self.stop()
            log = (self.base / "dovecot.log").read_text(errors="replace") if (self.base / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot did not start: {log[-2000:]}") from None
        return self

    def stop(self) -> None:
        """Stop the master and every process it started (imap sessions included)."""
        if self.proc is not None:
            stop_group(self.proc, signal_group=True)
            self.proc = None

    def client(self, user: str = "socialmedicin"):
        """A logged-in IMAPClient over IMAPS (for tests and the demo to look and append)."""
        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        c = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        c.login(user, self.users[user])
        return c

    def append(self, raw: bytes, folder: str = "INBOX", user: str = "socialmedicin") -> None:
        with self.client(user) as c:
            c.append(folder, raw)

    def folder_messages(self, user: str = "socialmedicin") -> dict[str, list[tuple[bytes, list[bytes]]]]:
        """Every folder with its messages as (raw bytes, flags)."""
        out: dict[str, list[tuple[bytes, list[bytes]]]] = {}
        with self.client(user) as c:
            for flags, _delim, name in c.list_folders():
                if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                    continue
                info = c.select_folder(name, readonly=True)
                msgs = []
                if info.get(b"EXISTS", 0):
                    data = c.fetch(c.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
                    for _uid, d in sorted(data.items()):
                        msgs.append((d[b"BODY[]"], list(d[b"FLAGS"])))
                out[name] = msgs
        return out


class Postgres:
    """A private PostgreSQL cluster (Debian's postgresql package) on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bins[-1].parent
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> "Postgres":
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(self.user)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.base / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run("pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "pg.log"), "-w", "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")
        except Exception:
            pass


def write_config(folder: Path, dovecot: "Dovecot", smtp_port: int, ca: TestCA, *, mailbox_extra: str = "",
                 smtp_extra: str = "", extra: str = "", header: str = "") -> Path:
    """An intake config (and its IMAP password file) for the daemon against these servers."""
    pw = folder / "imap-password"
    pw.write_text(dovecot.users["socialmedicin"] + "\n")
    pw.chmod(0o600)
    config = folder / "intake.toml"
    config.write_text(f"""{header}
[mailbox]
host = "localhost"
port = {dovecot.imaps_port}
security = "tls"
ca_file = "{ca.ca_file}"
username = "socialmedicin"
password_file = "{pw}"
folder = "INBOX"
{mailbox_extra}

[smtp]
host = "localhost"
port = {smtp_port}
security = "starttls"
ca_file = "{ca.ca_file}"
from_address = "socialmedicin@rn.dk"
{smtp_extra}

[store]
url = "sqlite:///{folder / 'intake.db'}"
{extra}
""")
    return config


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class SmtpSink:
    """aiosmtpd on a free port with STARTTLS (required) and optional AUTH; keeps messages."""

    def __init__(self, ca: TestCA, port: int = 0, folder: Path | None = None,
                 auth: tuple[str, str] | None = None, implicit_tls: bool = False) -> None:
        self.ca = ca
        self.implicit_tls = implicit_tls
        self.port = port or free_port()
        self.folder = folder
        self.auth = auth
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.controller = None

    def start(self) -> "SmtpSink":
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                raw = envelope.original_content or envelope.content
                item = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                        "raw": raw, "received_at": time.time(),
                        "message": message_from_bytes(raw, policy=policy.default)}
                with sink.lock:
                    sink.messages.append(item)
                    if sink.folder:
                        sink.folder.mkdir(parents=True, exist_ok=True)
                        (sink.folder / f"reply-{len(sink.messages):04d}.eml").write_bytes(raw)
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = self.auth and auth_data.login.decode() == self.auth[0] and auth_data.password.decode() == self.auth[1]
            return AuthResult(success=bool(ok))

        if self.implicit_tls:
            # aiosmtpd only counts STARTTLS as TLS for AUTH: the whole session is TLS here
            kwargs = dict(hostname="127.0.0.1", port=self.port, ssl_context=self.ca.server_context(),
                          ready_timeout=10, auth_require_tls=False)
        else:
            kwargs = dict(hostname="127.0.0.1", port=self.port, tls_context=self.ca.server_context(),
                          require_starttls=True, ready_timeout=10)
        if self.auth:
            kwargs.update(authenticator=authenticator, auth_required=True)
        self.controller = Controller(Handler(), **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)
