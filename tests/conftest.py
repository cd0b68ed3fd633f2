"""Real servers for the daemon tests: a private Dovecot (IMAPS, trustme certificates) and an
aiosmtpd sink with STARTTLS, both on free ports, started per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intake.edges.devservers import DOVECOT_BIN, Dovecot, SmtpSink, TestCA, free_port, write_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ca(tmp_path_factory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def dovecot(tmp_path, ca):
    if not Path(DOVECOT_BIN).exists():
        pytest.fail("dovecot is not installed: run scripts/bootstrap.sh (apt-get install dovecot-imapd)")
    base = Path(tempfile_dir()) / f"dovecot-{os.getpid()}-{free_port()}"
    d = Dovecot(base, ca).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def tempfile_dir() -> str:
    # Dovecot's mail user (nobody) must reach the folder: not under a 0700 pytest tmp dir.
    path = Path("/tmp/intake-tests")
    path.mkdir(mode=0o755, exist_ok=True)
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture
def smtp(ca):
    s = SmtpSink(ca).start()
    yield s
    s.stop()


class Env:
    """A config for the daemon against the fixtures, and helpers to run it."""

    def __init__(self, tmp_path: Path, dovecot: Dovecot, smtp_port: int, ca: TestCA, extra: str = "") -> None:
        self.tmp = tmp_path
        self.dovecot = dovecot
        self.db = tmp_path / "intake.db"
        self.config = write_config(
            tmp_path, dovecot, smtp_port, ca, mailbox_extra="timeout_seconds = 10",
            smtp_extra="timeout_seconds = 5",
            extra="[outbox]\nretry_initial_seconds = 0.3\nretry_max_seconds = 1.0\n" + extra)

    def run_once(self, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "intake", "run", "--once", "--config", str(self.config)],
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})

    def start(self, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "intake", "run", "--config", str(self.config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, **(env or {})})


@pytest.fixture
def env(tmp_path, dovecot, smtp, ca) -> Env:
    return Env(tmp_path, dovecot, smtp.port, ca)
