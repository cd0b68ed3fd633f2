"""The daemon's end-to-end drain on a second IMAP implementation: a private Cyrus IMAP.

The same corpus as tests/test_daemon.py on Dovecot, on Cyrus in two name layouts: Debian's
shipped imapd.conf ("INBOX." personal namespace, "." between levels) and Cyrus 3's compiled-in
default (altnamespace, "/" between levels): filing with MOVE, keywords, replies, the checkpoint
(a second run answers nothing twice). On Debian's layout also COPY + UID EXPUNGE, IDLE (over
STARTTLS) and requeue.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intake.edges import cyrus as cyrus_server
from intake.edges.cyrus import Cyrus
from intake.edges.devservers import free_port
from tests.conftest import ROOT, Env, tempfile_dir
from tests.mailfactory import referral
from tests.test_daemon import FOLDERS, corpus, events, norm, place

ANSWERED = ["<ok@aalborg.dk>", "<nocpr@aalborg.dk>", "<kf@aalborg.dk>", "<sub@rebild.dk>"]


@pytest.fixture
def cyrus(request, ca):
    """A private Cyrus, Debian's name layout unless parametrized with "upstream"."""
    why = cyrus_server.missing()
    if why:
        pytest.fail(why)
    base = Path(tempfile_dir()) / f"cyrus-{os.getpid()}-{free_port()}"
    c = Cyrus(base, ca, layout=getattr(request, "param", "debian")).start()
    yield c
    c.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cenv(tmp_path, cyrus, smtp, ca) -> Env:
    return Env(tmp_path, cyrus, smtp.port, ca)


def drain_on_cyrus(cenv: Env, cyrus: Cyrus, run_env: dict | None = None):
    """The corpus through `--once`: every message in exactly its decision's folder (by the
    server's own name for it), nothing left in the inbox."""
    msgs = corpus()
    # Cyrus refuses to store a message without a valid header section (APPEND: NO "Message
    # contains invalid header"): the corpus's garbage message m5 cannot reach its inbox
    with pytest.raises(Exception, match="invalid header"):
        cyrus.append(msgs.pop("m5")[0])
    for raw, _ in msgs.values():
        cyrus.append(raw)
    p = cenv.run_once(env=run_env)
    assert p.returncode == 0, p.stderr + p.stdout[-3000:]
    folders = place(cyrus.folder_messages())
    assert folders["INBOX"] == []
    for key, (raw, decision) in msgs.items():
        holders = [name for name, raws in folders.items() if norm(raw) in raws]
        assert holders == [cyrus.server_name(FOLDERS[decision])], (key, holders, sorted(folders))
    return p


@pytest.mark.parametrize("cyrus", ["debian", "upstream"], indirect=True)
def test_once_drains_on_cyrus_and_a_second_run_answers_nothing_twice(cenv: Env, cyrus: Cyrus, smtp):
    p = drain_on_cyrus(cenv, cyrus)
    assert sorted(r["message"]["In-Reply-To"] for r in smtp.wait_for(4, timeout=10)) == sorted(ANSWERED)
    kinds = sorted(r["message"]["Subject"].split(" [")[0] for r in smtp.messages)
    assert kinds == ["Henvisning modtaget", "Henvisning modtaget", "Henvisningen mangler oplysninger",
                     "Sendes via Mediconnect Proces"]
    assert {r["rcpt_tos"][0] for r in smtp.messages} == {"mette.soerensen@aalborg.dk", "team@jobcenter.rebild.dk"}
    # the triage folders exist exactly once each, under the server's naming (no stray top level)
    names = set(cyrus.folder_messages())
    for folder in FOLDERS.values():
        assert cyrus.server_name(folder) in names
    if cyrus.prefix:
        assert not any(n.startswith("Triage") for n in names), names
    # Cyrus offers keywords (PERMANENTFLAGS \*): they tell staff why
    flags = {f for _raw, fl in cyrus.folder_messages()[cyrus.server_name("Triage/Mangler")] for f in fl}
    assert b"mangler-cpr" in flags and b"sme-incomplete" in flags
    assert any(e["event"] == "imap_connected" for e in events(p.stdout))
    # a second run: nothing new, nothing answered twice, nothing moved
    before = place(cyrus.folder_messages())
    p2 = cenv.run_once()
    assert p2.returncode == 0, p2.stderr
    time.sleep(0.5)
    assert len(smtp.messages) == 4
    assert place(cyrus.folder_messages()) == before


def test_copy_fallback_on_cyrus(cenv: Env, cyrus: Cyrus, smtp):
    """Without MOVE: COPY + \\Deleted + UID EXPUNGE (Cyrus offers UIDPLUS)."""
    drain_on_cyrus(cenv, cyrus, run_env={"INTAKE_IMAP_NO_MOVE": "1"})
    assert sorted(r["message"]["In-Reply-To"] for r in smtp.wait_for(4, timeout=10)) == sorted(ANSWERED)


def test_idle_on_cyrus_delivers_a_message_appended_while_running(cenv: Env, cyrus: Cyrus, smtp):
    """The daemon on Cyrus's plain port with STARTTLS (Cyrus says LOGINDISABLED before it)."""
    tls = f'port = {cyrus.imaps_port}\nsecurity = "tls"'
    assert tls in cenv.config.read_text()
    cenv.config.write_text(cenv.config.read_text().replace(tls, f'port = {cyrus.imap_port}\nsecurity = "starttls"'))
    proc = cenv.start()
    try:
        cyrus.append(referral(message_id="<first@aalborg.dk>"))  # connected for sure once answered
        assert len(smtp.wait_for(1, timeout=30)) == 1
        time.sleep(1.0)  # back in IDLE
        t0 = time.monotonic()
        cyrus.append(referral(message_id="<idle@aalborg.dk>"))
        assert len(smtp.wait_for(2, timeout=20)) == 2
        assert time.monotonic() - t0 < 10
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert any(e["event"] == "imap_connected" and e["idle"] for e in events(out))
    folders = place(cyrus.folder_messages())
    assert folders["INBOX"] == [] and len(folders[cyrus.server_name(FOLDERS["accepted"])]) == 2


def test_requeue_on_cyrus(cenv: Env, cyrus: Cyrus, smtp):
    """`intake requeue` moves a manual message back to the inbox (by the server's name for the
    manual folder) and the next run files it anew."""
    cyrus.append(referral(from_="a@test.example", message_id="<rq@test.example>"))
    assert cenv.run_once().returncode == 0
    manual, accepted = cyrus.server_name(FOLDERS["manual"]), cyrus.server_name(FOLDERS["accepted"])
    assert len(cyrus.folder_messages()[manual]) == 1
    cenv.config.write_text(cenv.config.read_text()
                           + '\n[[triage.municipalities]]\nname = "Test"\ndomain = "test.example"\n')
    p = subprocess.run([sys.executable, "-m", "intake", "requeue", "--all", "--config", str(cenv.config)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.startswith("1 besked"), p.stderr
    assert len(cyrus.folder_messages()["INBOX"]) == 1
    assert cenv.run_once().returncode == 0
    assert len(smtp.wait_for(1, timeout=10)) == 1
    folders = cyrus.folder_messages()
    assert folders[manual] == [] and folders["INBOX"] == [] and len(folders[accepted]) == 1
    flags = folders[accepted][0][1]
    assert b"sme-accepted" in flags
    assert not {f for f in flags if f.startswith((b"sme-manual", b"grund-"))}, flags  # the old decision's are gone
