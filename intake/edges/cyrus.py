"""A throwaway private Cyrus IMAP server for the tests (the second IMAP implementation, never production).

`Cyrus` runs Debian's Cyrus 3 `master` with its own imapd.conf and cyrus.conf in a temporary
folder: IMAPS and IMAP (STARTTLS) on free loopback ports, the trustme certificate, a sasldb
with real passwords (saslpasswd2), the user's mailbox created by the admin over IMAP.

Two name layouts: `layout="debian"` is what Debian's /etc/imapd.conf ships (the standard
namespace: personal folders under "INBOX.", "." between levels); `layout="upstream"` is Cyrus 3's
compiled-in default (altnamespace + unixhierarchysep: folders beside INBOX, "/" between levels).

Packages: `cyrus-common` (master, ctl_cyrusdb, libraries) and `sasl2-bin` (saslpasswd2). The
`imapd` binary is in `cyrus-imapd`, which Debian declares in conflict with `dovecot-imapd` (both
provide imap-server); the tests need both, so scripts/bootstrap.sh unpacks the cyrus-imapd .deb
into .venv/cyrus-imapd (`apt-get download` + `dpkg-deb -x`) instead of installing it. An
installed /usr/lib/cyrus/bin/imapd or $INTAKE_CYRUS_IMAPD is used first.
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from intake.edges.devservers import TestCA, free_port, stop_group, wait_port

CYRUS_BIN = Path("/usr/lib/cyrus/bin")
MASTER_BIN = CYRUS_BIN / "master"
SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
UNPACKED = Path(__file__).resolve().parents[2] / ".venv" / "cyrus-imapd" / "usr" / "lib" / "cyrus" / "bin"
ADMIN = "cyrus"


def imapd_bin() -> Path | None:
    """The imapd binary: $INTAKE_CYRUS_IMAPD, the installed package, or the unpacked .deb."""
    for candidate in (os.environ.get("INTAKE_CYRUS_IMAPD"), CYRUS_BIN / "imapd", UNPACKED / "imapd"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def missing() -> str | None:
    """Why a Cyrus cannot start here (None: it can)."""
    if not MASTER_BIN.exists():
        return "cyrus master is not installed (apt-get install cyrus-common; see scripts/bootstrap.sh)"
    if not Path(SASLPASSWD2).exists():
        return "saslpasswd2 is not installed (apt-get install sasl2-bin)"
    if imapd_bin() is None:
        return "no Cyrus imapd: run scripts/bootstrap.sh (unpacks cyrus-imapd into .venv/cyrus-imapd)"
    return None


_IMAPD_CONF = """\
configdirectory: {base}/config
defaultpartition: default
partition-default: {base}/spool
proc_path: {base}/config/proc
mboxname_lockpath: {base}/config/lock
cyrus_user: {cyrus_user}
servername: localhost
syslog_prefix: intake-test-cyrus
admins: {admin}
altnamespace: {altnamespace}
unixhierarchysep: {unixhierarchysep}
virtdomains: off
hashimapspool: false
allowplaintext: no
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {base}/sasldb2
sasl_mech_list: PLAIN LOGIN
tls_server_cert: {cert}
tls_server_key: {key}
tls_versions: tls1_2 tls1_3
imapidlepoll: 1
sievedir: {base}/sieve
umask: 077
{extra_conf}
"""

_CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap  cmd="{imapd} -C {conf} -U 30" listen="127.0.0.1:{imap_port}" prefork=0 maxchild=50
  imaps cmd="{imapd} -C {conf} -s -U 30" listen="127.0.0.1:{imaps_port}" prefork=0 maxchild=50
}}
EVENTS {{
}}
DAEMON {{
{daemons}
}}
"""

# what Cyrus's mkimap makes in configdirectory (the sockets default to {configdirectory}/socket)
_CONFIG_DIRS = ("db", "socket", "proc", "lock", "log", "msg", "user", "quota", "sieve", "ptclient")
LAYOUTS = {"debian": ("no", "no"), "upstream": ("yes", "yes")}


@dataclass
class Cyrus:
    """A private Cyrus; `users` maps user name to password (each gets a mailbox)."""

    base: Path
    ca: TestCA
    users: dict[str, str] = field(default_factory=lambda: {"socialmedicin": "test-password"})
    layout: str = "debian"
    idled: bool = True  # run idled (IDLE pushed at once) rather than imapidlepoll (1 s) alone
    extra_conf: str = ""
    admin_password: str = "admin-password"
    imap_port: int = 0
    imaps_port: int = 0
    proc: subprocess.Popen | None = None
    _created: bool = False

    @property
    def delimiter(self) -> str:
        return "/" if self.layout == "upstream" else "."

    @property
    def prefix(self) -> str:
        """The personal namespace prefix a user sees ("" with altnamespace)."""
        return "" if self.layout == "upstream" else "INBOX."

    def server_name(self, name: str) -> str:
        """How this server names a folder given as "A/B" (INBOX as it is)."""
        if name == "INBOX":
            return name
        return self.prefix + name.replace("/", self.delimiter)

    def start(self) -> "Cyrus":
        why = missing()
        if why:
            raise RuntimeError(why)
        imapd = imapd_bin()
        self.base.mkdir(parents=True, exist_ok=True)
        for sub in ("config", "spool", "sieve", *(f"config/{d}" for d in _CONFIG_DIRS)):
            (self.base / sub).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            cyrus_user = ADMIN if _has_user(ADMIN) else "nobody"
        else:
            cyrus_user = pwd.getpwuid(os.getuid()).pw_name
        alt, unixsep = LAYOUTS[self.layout]
        conf = self.base / "imapd.conf"
        conf.write_text(_IMAPD_CONF.format(
            base=self.base, cyrus_user=cyrus_user, admin=ADMIN, altnamespace=alt, unixhierarchysep=unixsep,
            cert=self.base / "server-cert.pem", key=self.base / "server-key.pem", extra_conf=self.extra_conf))
        self.imap_port = self.imap_port or free_port()
        self.imaps_port = self.imaps_port or free_port()
        idled = imapd.parent / "idled"
        daemons = f'  idled cmd="{idled} -C {conf}"' if self.idled and idled.exists() else ""
        master_conf = self.base / "cyrus.conf"
        master_conf.write_text(_CYRUS_CONF.format(
            bin=CYRUS_BIN, conf=conf, imapd=imapd, imap_port=self.imap_port, imaps_port=self.imaps_port, daemons=daemons))
        if not self._created:
            # copies the cyrus user can read (the CA's folder may be a 0700 pytest tmp dir)
            shutil.copyfile(self.ca.cert_file, self.base / "server-cert.pem")
            shutil.copyfile(self.ca.key_file, self.base / "server-key.pem")
            self._set_passwords()
        if os.geteuid() == 0:
            user = pwd.getpwnam(cyrus_user)
            os.chmod(self.base, 0o755)
            for root, dirs, files in os.walk(self.base):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), user.pw_uid, user.pw_gid)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chmod(self.base / "server-key.pem", 0o600)
        log = open(self.base / "master.log", "ab")
        self.proc = subprocess.Popen(
            [str(MASTER_BIN), "-C", str(conf), "-M", str(master_conf), "-p", str(self.base / "config" / "master.pid"),
             "-L", str(self.base / "master.log")],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        try:
            wait_port(self.imaps_port, timeout=30)
            if not self._created:
                self._create_mailboxes()
                self._created = True
        except BaseException:
            self.stop()
            text = (self.base / "master.log").read_text(errors="replace")
            raise RuntimeError(f"cyrus did not start (its own log goes to syslog): {text[-2000:]}") from None
        return self

    def _set_passwords(self) -> None:
        db = self.base / "sasldb2"
        for user, password in {ADMIN: self.admin_password, **self.users}.items():
            subprocess.run([SASLPASSWD2, "-f", str(db), "-u", "localhost", "-c", "-p", user],
                           input=password.encode(), check=True, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _create_mailboxes(self) -> None:
        """The admin creates user.<name> (user/<name> with unixhierarchysep) for every user."""
        with self._login(ADMIN, self.admin_password) as c:
            for user in self.users:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        c.create_folder(f"user{self.delimiter}{user}")
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)

    def stop(self) -> None:
        """Stop the master (it stops its services) and then anything left in its group."""
        if self.proc is not None:
            stop_group(self.proc, signal_group=False)
            self.proc = None

    def _login(self, user: str, password: str):
        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        c = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        c.login(user, password)
        return c

    def client(self, user: str = "socialmedicin"):
        """A logged-in IMAPClient over IMAPS (for tests to look and append)."""
        return self._login(user, self.users[user])

    def append(self, raw: bytes, folder: str = "INBOX", user: str = "socialmedicin") -> None:
        """Append to `folder` ("A/B" names are translated to this server's)."""
        with self.client(user) as c:
            c.append(self.server_name(folder), raw)

    def folder_messages(self, user: str = "socialmedicin") -> dict[str, list[tuple[bytes, list[bytes]]]]:
        """Every folder (the server's own names) with its messages as (raw bytes, flags)."""
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


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
