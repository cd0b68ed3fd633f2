"""The daemon on IMAP servers that behave like Exchange or Cyrus, not like a default Dovecot:
no user keywords, no MOVE / UIDPLUS, a `.` delimiter under an `INBOX.` prefix, Danish folder
names. Each is a real Dovecot setting; the end-to-end drain must hold on every one."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from intake.edges.devservers import DOVECOT_BIN, Dovecot, free_port
from intake.edges.imapconn import Mailbox, server_folder_name
from intake.config import load_settings
from tests.conftest import Env, tempfile_dir
from tests.mailfactory import referral
from tests.test_daemon import FOLDERS, corpus, events, norm, place

# Exchange's PERMANENTFLAGS has no \*: Dovecot's ACL plugin without the right `w` gives
# PERMANENTFLAGS (\Deleted \Seen) and silently drops keyword STOREs (seen on 2.3.19).
NO_KEYWORDS = """
mail_plugins = $mail_plugins acl
plugin {
  acl = vfile:%(base)s/global-acl
}
"""
# the post-login CAPABILITY without MOVE and UIDPLUS (Dovecot still accepts the commands, but a
# client that reads the capability list must not use them)
NO_MOVE_UIDPLUS = """
protocol imap {
  imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN UNSELECT
}
"""
# MOVE offered, UIDPLUS not (MOVE needs no UIDPLUS)
MOVE_NO_UIDPLUS = NO_MOVE_UIDPLUS.replace("UNSELECT", "UNSELECT MOVE")
# Cyrus-like: everything under INBOX., "." between levels
DOT_PREFIX = """
namespace inbox {
  separator = .
  prefix = INBOX.
}
"""
DANISH = {"accepted": "Triage/Klar til læge", "incomplete": "Triage/Mangler oplysninger",
          "redirect": "Triage/Mediconnect", "manual": "Triage/Afklaring på sag",
          "ignored": "Triage/Ignoreret (auto-svar)"}


@dataclass
class Variant:
    name: str
    extra_conf: str = ""
    folders: dict[str, str] = field(default_factory=lambda: dict(FOLDERS))
    config_extra: str = ""
    keywords: bool = True
    prefix: str = ""
    delimiter: str = "/"

    def server(self, name: str) -> str:
        return server_folder_name(name, self.prefix, self.delimiter)


VARIANTS = {
    "no_keywords": Variant("no_keywords", NO_KEYWORDS, keywords=False),
    "no_keywords_never": Variant("no_keywords_never", NO_KEYWORDS, keywords=False,
                                 config_extra='[daemon]\nreason_subfolders = "never"\n'),
    "no_move_uidplus": Variant("no_move_uidplus", NO_MOVE_UIDPLUS),
    "move_no_uidplus": Variant("move_no_uidplus", MOVE_NO_UIDPLUS),
    "dot_prefix_danish": Variant("dot_prefix_danish", DOT_PREFIX, folders=dict(DANISH), prefix="INBOX.",
                                 delimiter=".",
                                 config_extra="[folders]\n" + "".join(f'{k} = "{v}"\n' for k, v in DANISH.items())),
}


def start_dovecot(ca, variant: Variant) -> Dovecot:
    if not Path(DOVECOT_BIN).exists():
        pytest.fail("dovecot is not installed: run scripts/bootstrap.sh (apt-get install dovecot-imapd)")
    base = Path(tempfile_dir()) / f"dovecot-{os.getpid()}-{free_port()}"
    base.mkdir(parents=True)
    os.chmod(base, 0o755)
    (base / "global-acl").write_text("* owner lrsteikxa\n")  # every right but `w` (keywords)
    return Dovecot(base, ca, extra_conf=variant.extra_conf % {"base": base} if "%(" in variant.extra_conf
                   else variant.extra_conf).start()


@pytest.fixture(params=list(VARIANTS))
def quirky(request, ca):
    variant = VARIANTS[request.param]
    d = start_dovecot(ca, variant)
    yield variant, d
    d.stop()
    shutil.rmtree(d.base, ignore_errors=True)


def test_drain_on_each_server_variant(quirky, smtp, ca, tmp_path):
    variant, dovecot = quirky
    env = Env(tmp_path, dovecot, smtp.port, ca, extra=variant.config_extra)
    msgs = corpus()
    for raw, _ in msgs.values():
        dovecot.append(raw)
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    folders = place(dovecot.folder_messages())
    flags = {name: [fl for _r, fl in ms] for name, ms in dovecot.folder_messages().items()}
    assert folders["INBOX"] == []
    subfolders = variant.name == "no_keywords"
    manual = variant.server(variant.folders["manual"])
    for key, (raw, decision) in msgs.items():
        holders = [name for name, raws in folders.items() for r in raws if r == norm(raw)]
        want = variant.server(variant.folders[decision])
        if decision == "manual" and subfolders:  # Triage/Manuel/<reason>, e.g. sender_not_allowed
            assert len(holders) == 1 and holders[0].startswith(manual + variant.delimiter), (key, holders)
        else:
            assert holders == [want], (variant.name, key, holders)
    if subfolders:
        reasons = sorted(h.rpartition(variant.delimiter)[2] for h in folders if h.startswith(manual + variant.delimiter))
        assert reasons and all(r.replace("_", "").isalpha() for r in reasons), reasons
    all_flags = {f for fls in flags.values() for fl in fls for f in fl}
    if variant.keywords:
        assert b"sme-accepted" in all_flags and b"mangler-cpr" in all_flags
    else:
        assert not any(f.startswith(b"sme-") for f in all_flags)
    evs = events(p.stdout)
    server = [e for e in evs if e["event"] == "imap_server"]
    assert len(server) == 1 and server[0]["prefix"] == variant.prefix and server[0]["delimiter"] == variant.delimiter
    assert server[0]["keywords"] is variant.keywords
    unsupported = [e for e in evs if e["event"] == "imap_keywords_unsupported"]
    assert len(unsupported) == (0 if variant.keywords else 1)
    if variant.name in ("no_move_uidplus", "move_no_uidplus"):
        assert server[0]["move"] is (variant.name == "move_no_uidplus") and server[0]["uidplus"] is False
    # one reply per answerable message, and none again on a second run
    replies = smtp.wait_for(4, timeout=10)
    assert sorted(r["message"]["In-Reply-To"] for r in replies) == sorted(
        ["<ok@aalborg.dk>", "<nocpr@aalborg.dk>", "<kf@aalborg.dk>", "<sub@rebild.dk>"])
    assert env.run_once().returncode == 0
    assert len(smtp.messages) == 4
    assert place(dovecot.folder_messages())["INBOX"] == []


def test_danish_folder_names_go_out_as_modified_utf7(ca, tmp_path):
    variant = VARIANTS["dot_prefix_danish"]
    d = start_dovecot(ca, variant)
    try:
        settings = _settings(tmp_path, d, ca, variant)
        mb = Mailbox(settings.mailbox)
        mb.connect()
        try:
            mb.ensure_folders([DANISH["manual"]])
        finally:
            mb.close()
        with d.client() as c:
            c.folder_encode = False
            names = [n for _f, _d, n in c.list_folders()]
        assert b"INBOX.Triage.Afklaring p&AOU- sag" in names, names
    finally:
        d.stop()
        shutil.rmtree(d.base, ignore_errors=True)


def test_without_uidplus_expunge_spares_what_others_marked_deleted(ca, tmp_path):
    """Plain EXPUNGE would remove every \\Deleted message in the inbox: one a person marked
    \\Deleted (and the daemon has not filed) must still be there afterwards, still \\Deleted."""
    variant = VARIANTS["no_move_uidplus"]
    d = start_dovecot(ca, variant)
    try:
        d.append(referral(message_id="<ours@aalborg.dk>"))
        d.append(referral(message_id="<theirs@aalborg.dk>"))
        with d.client() as c:
            c.select_folder("INBOX")
            theirs = c.search(["HEADER", "Message-ID", "<theirs@aalborg.dk>"])
            c.add_flags(theirs, [b"\\Deleted"])
        settings = _settings(tmp_path, d, ca, variant)
        mb = Mailbox(settings.mailbox)
        mb.connect()
        try:
            assert b"UIDPLUS" not in mb.capabilities and b"MOVE" not in mb.capabilities
            mb.ensure_folders(["Triage/Klar"])
            mb.select()
            ours = mb._c().search(["HEADER", "Message-ID", "<ours@aalborg.dk>"])
            mb.file(ours, "Triage/Klar", [None])
        finally:
            mb.close()
        folders = d.folder_messages()
        assert len(folders["Triage/Klar"]) == 1 and b"<ours@aalborg.dk>" in folders["Triage/Klar"][0][0]
        assert len(folders["INBOX"]) == 1
        raw, flags = folders["INBOX"][0]
        assert b"<theirs@aalborg.dk>" in raw and b"\\Deleted" in flags
    finally:
        d.stop()
        shutil.rmtree(d.base, ignore_errors=True)


def test_folder_prefix_from_config_overrides_namespace(ca, tmp_path):
    variant = VARIANTS["dot_prefix_danish"]
    d = start_dovecot(ca, variant)
    try:
        settings = _settings(tmp_path, d, ca, variant, mailbox_extra='folder_prefix = ""')
        mb = Mailbox(settings.mailbox)
        mb.connect()
        try:
            assert (mb.prefix, mb.delimiter) == ("", ".")
            assert mb.server_folder("Triage/Klar") == "Triage.Klar"
        finally:
            mb.close()
        mb = Mailbox(_settings(tmp_path, d, ca, variant).mailbox)
        mb.connect()
        try:
            assert (mb.prefix, mb.delimiter) == ("INBOX.", ".")
            assert mb.server_folder("Triage/Klar") == "INBOX.Triage.Klar"
            assert mb.server_folder("INBOX") == "INBOX"
        finally:
            mb.close()
    finally:
        d.stop()
        shutil.rmtree(d.base, ignore_errors=True)


def _settings(tmp_path: Path, d: Dovecot, ca, variant: Variant, mailbox_extra: str = ""):
    from intake.edges.devservers import write_config

    folder = tmp_path / f"cfg-{free_port()}"
    folder.mkdir()
    return load_settings(write_config(folder, d, 25, ca, mailbox_extra=mailbox_extra, extra=variant.config_extra))


@pytest.mark.parametrize("mode,keywords,set_keywords,expected", [
    ("auto", True, True, False), ("auto", False, True, True), ("auto", True, False, True),
    ("always", True, True, True), ("never", False, True, False)])
def test_reason_subfolders_modes(mode, keywords, set_keywords, expected):
    from types import SimpleNamespace

    from intake.service.daemon import reason_subfolders

    settings = SimpleNamespace(daemon=SimpleNamespace(reason_subfolders=mode, set_keywords=set_keywords))
    assert reason_subfolders(settings, SimpleNamespace(keywords_allowed=keywords)) is expected
