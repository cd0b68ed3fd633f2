"""OAuth 2.0 sign-in (Microsoft 365 style) against real servers: msal and a token command, a
local HTTPS token issuer, Dovecot's oauth2 passdb, aiosmtpd with AUTH XOAUTH2, the daemon."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from intake.config import ConfigError, OAuth2Config, load_settings, read_secret
from intake.edges import oauth
from intake.edges.devservers import DOVECOT_BIN, Dovecot, free_port, write_config
from tests.conftest import Env, tempfile_dir
from tests.mailfactory import BODY, referral
from tests.test_daemon import events, place
from tests.tokenissuer import CLIENT_ID, TENANT, OAuthSmtpSink, TokenIssuer, dovecot_oauth2


@pytest.fixture
def issuer(ca):
    i = TokenIssuer(ca).start()
    yield i
    i.stop()


@pytest.fixture
def odovecot(issuer, ca):
    """Dovecot signing in XOAUTH2/OAUTHBEARER at the issuer (and PLAIN by password for the
    test's own appends and looks)."""
    if not Path(DOVECOT_BIN).exists():
        pytest.fail("dovecot is not installed")
    base = Path(tempfile_dir()) / f"dovecot-oauth-{os.getpid()}-{free_port()}"
    kw = dovecot_oauth2(issuer, base)
    kw["passdb"] += f"""
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {base}/passwd
}}"""
    kw["auth_mechanisms"] = "plain login xoauth2 oauthbearer"
    d = Dovecot(base, ca, **kw).start()
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def osmtp(ca, issuer):
    s = OAuthSmtpSink(ca, issuer).start()
    yield s
    s.stop()


def secret_file(path: Path, text: str = "right-secret") -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def oauth_table(section: str, issuer: TokenIssuer, ca, secret: Path | None = None,
                command: list[str] | None = None, renew: float | None = None, mechanism: str = "xoauth2") -> str:
    lines = ['auth = "oauth2"', f"[{section}.oauth2]", f'mechanism = "{mechanism}"']
    if command:
        lines.append(f"token_command = {json.dumps(command)}")
    else:
        lines += [f'tenant_id = "{TENANT}"', f'client_id = "{CLIENT_ID}"', f'client_secret_file = "{secret}"',
                  f'authority = "{issuer.authority}"', f'ca_file = "{ca.ca_file}"']
    if renew is not None:
        lines.append(f"renew_before_seconds = {renew}")
    return "\n".join(lines)


class OAuthEnv(Env):
    """Env (tests/conftest.py) with OAuth 2.0 sign-in for IMAP and SMTP."""

    def __init__(self, tmp_path: Path, dovecot: Dovecot, smtp_port: int, ca, issuer: TokenIssuer, *,
                 imap_secret: Path | None = None, smtp_secret: Path | None = None,
                 imap_command: list[str] | None = None, smtp_command: list[str] | None = None,
                 renew: float | None = None, extra: str = "") -> None:
        self.tmp, self.dovecot, self.db = tmp_path, dovecot, tmp_path / "intake.db"
        self.config = write_config(
            tmp_path, dovecot, smtp_port, ca,
            mailbox_extra="timeout_seconds = 10\n" + oauth_table("mailbox", issuer, ca, imap_secret, imap_command, renew),
            smtp_extra='timeout_seconds = 5\nusername = "socialmedicin"\n'
                       + oauth_table("smtp", issuer, ca, smtp_secret, smtp_command, renew),
            extra="[outbox]\nretry_initial_seconds = 0.3\nretry_max_seconds = 1.0\n"
                  "[daemon]\nreconnect_initial_seconds = 0.2\nreconnect_max_seconds = 1.0\n" + extra)


def no_token_in(issuer: TokenIssuer, *texts: str) -> None:
    for tok in list(issuer.tokens):
        for t in texts:
            assert tok not in t
    for t in texts:
        assert "right-secret" not in t and "wrong-secret" not in t


def wait_until(cond, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def stop(proc) -> tuple[str, str]:  # noqa: ANN001
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out, err


# --- configuration and secret files ------------------------------------------------------------
def test_a_group_or_world_readable_secret_file_is_refused(tmp_path, monkeypatch):
    f = tmp_path / "secret"
    f.write_text("s3cret\n")
    f.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {f}"):
        read_secret(f, private=True)
    f.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret(f, private=True)
    assert read_secret(f) == "s3cret"  # other secrets (not sign-in ones) as before
    f.chmod(0o600)
    assert read_secret(f, private=True) == "s3cret"
    creds = tmp_path / "creds"  # systemd LoadCredential=: the service's own folder
    creds.mkdir()
    c = creds / "client-secret"
    c.write_text("x")
    c.chmod(0o644)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret(c, private=True) == "x"


def test_the_daemon_refuses_a_world_readable_client_secret(tmp_path, dovecot, smtp, ca, issuer):
    secret = secret_file(tmp_path / "client-secret")
    secret.chmod(0o644)
    env = OAuthEnv(tmp_path, dovecot, smtp.port, ca, issuer, imap_secret=secret, smtp_secret=secret)
    p = env.run_once()
    assert p.returncode == 2 and f"chmod 600 {secret}" in p.stderr, p.stderr
    assert issuer.issued == 0


@pytest.mark.parametrize("text,word", [
    ('auth = "oauth2"\n', "needs a [mailbox.oauth2] table"),
    ('auth = "oauth2"\n[mailbox.oauth2]\ntenant_id = "t"\n', "client_id"),
    ('auth = "oauth2"\n[mailbox.oauth2]\ntenant_id = "t"\nclient_id = "c"\n', "client_secret_file or certificate_file"),
    ('auth = "oauth2"\n[mailbox.oauth2]\ntoken_command = ["x"]\nclient_id = "c"\n', "not both"),
    ('auth = "oauth2"\n[mailbox.oauth2]\ntoken_command = []\n', "empty"),
    ('auth = "oauth2"\n[mailbox.oauth2]\ntoken_command = ["x"]\nmechanism = "plain"\n', "mechanism"),
])
def test_oauth2_config_says_what_is_missing(tmp_path, text, word):
    f = tmp_path / "c.toml"
    f.write_text('[mailbox]\nhost = "h"\nusername = "u"\n' + text)
    with pytest.raises(ConfigError) as e:
        load_settings(f)
    assert word in str(e.value)


def test_password_stays_the_default(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[mailbox]\nhost = "h"\nusername = "u"\n')
    with pytest.raises(ConfigError, match="password_file"):
        load_settings(f)
    f.write_text('[mailbox]\nhost = "h"\nusername = "u"\nauth = "oauth2"\n[mailbox.oauth2]\n'
                 'tenant_id = "t"\nclient_id = "c"\nclient_secret_file = "/s"\n')
    o = load_settings(f).mailbox.oauth2
    assert o.authority_url == "https://login.microsoftonline.com/t"
    assert o.scope == "https://outlook.office365.com/.default" and o.mechanism == "xoauth2"


# --- token sources -----------------------------------------------------------------------------
def test_msal_token_is_cached_renewed_before_expiry_and_a_wrong_secret_is_reported(tmp_path, ca, issuer):
    issuer.lifetime = 4
    secret = secret_file(tmp_path / "client-secret", "wrong-secret")
    cfg = OAuth2Config(tenant_id=TENANT, client_id=CLIENT_ID, client_secret_file=secret,
                       authority=issuer.authority, ca_file=ca.ca_file, renew_before_seconds=2)
    src = oauth.MsalSource(cfg)
    with pytest.raises(oauth.AuthFailure) as e:
        src.token()
    assert e.value.text.startswith("invalid_client: AADSTS7000215") and "wrong-secret" not in e.value.text
    assert e.value.key == "token:invalid_client:AADSTS7000215"  # the same key each time: logged once
    secret_file(secret)  # corrected: read again at the next try
    t1 = src.token()
    assert src.token() is t1 and issuer.issued == 1  # cached while more than 2 s remain
    assert 3 < t1.remaining() <= 4
    time.sleep(2.2)
    t2 = src.token()
    assert t2.access_token != t1.access_token and issuer.issued == 2
    src.invalidate()  # e.g. the server refused it
    assert src.token().access_token != t2.access_token and issuer.issued == 3


def test_msal_with_a_certificate(tmp_path, ca, issuer):
    import trustme

    rsa = trustme.KeyType.RSA  # Entra takes RSA keys only
    app = ca.ca.issue_cert("intake-app", key_type=rsa)  # key and certificate registered with the app
    issuer.client_certificate = app.cert_chain_pems[0].bytes()
    pem = tmp_path / "app.pem"
    pem.write_bytes(app.private_key_pem.bytes() + app.cert_chain_pems[0].bytes())
    pem.chmod(0o600)
    cfg = OAuth2Config(tenant_id=TENANT, client_id=CLIENT_ID, certificate_file=pem,
                       authority=issuer.authority, ca_file=ca.ca_file)
    assert oauth.MsalSource(cfg).token().access_token in issuer.tokens and issuer.assertions == 1
    other = ca.ca.issue_cert("someone-else", key_type=rsa)  # a key the app does not know
    pem.write_bytes(other.private_key_pem.bytes() + other.cert_chain_pems[0].bytes())
    with pytest.raises(oauth.AuthFailure, match="invalid_client"):
        oauth.MsalSource(cfg).token()
    pem.write_bytes(app.private_key_pem.bytes())  # a key alone needs the thumbprint
    with pytest.raises(oauth.AuthFailure, match="holds no certificate"):
        oauth.MsalSource(cfg).token()


def test_token_command_plain_json_jwt_and_failures(tmp_path):
    def cfg(*argv: str, timeout: float = 30.0) -> OAuth2Config:
        return OAuth2Config(token_command=list(argv), timeout_seconds=timeout)

    py = sys.executable
    t = oauth.CommandSource(cfg(py, "-c", "print('opaque-token')")).token()
    assert t.access_token == "opaque-token" and t.expires_at is None  # re-run at every sign-in
    t = oauth.CommandSource(cfg(py, "-c", "print('{\"access_token\": \"j\", \"expires_in\": 60}')")).token()
    assert t.access_token == "j" and 58 < t.remaining() <= 60
    import base64
    payload = base64.urlsafe_b64encode(json.dumps({"exp": int(time.time()) + 120}).encode()).decode().rstrip("=")
    t = oauth.CommandSource(cfg("echo", f"eyJhbGciOiJub25lIn0.{payload}.sig")).token()
    assert 118 < t.remaining() <= 120  # a JWT's exp, read unverified to know when to renew
    for argv, word in [((py, "-c", "import sys; print('no refresh token', file=sys.stderr); sys.exit(3)"),
                        "exited with 3: no refresh token"),
                       ((py, "-c", "print('   ')"), "printed no token"),
                       (("/nonexistent/helper",), "No such file")]:
        with pytest.raises(oauth.AuthFailure, match=word):
            oauth.CommandSource(cfg(*argv)).token()
    with pytest.raises(oauth.AuthFailure, match="no token within 0.5 s"):
        oauth.CommandSource(cfg(py, "-c", "import time; time.sleep(5)", timeout=0.5)).token()


# --- the daemon ----------------------------------------------------------------------------------
def test_once_signs_in_with_msal_on_imap_and_smtp(tmp_path, odovecot, osmtp, ca, issuer):
    secret = secret_file(tmp_path / "client-secret")
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer, imap_secret=secret, smtp_secret=secret)
    odovecot.append(referral(message_id="<o1@aalborg.dk>"))
    odovecot.append(referral(BODY.replace("CPR: 120385-1233\n", ""), message_id="<o2@aalborg.dk>"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    folders = place(odovecot.folder_messages())
    assert folders["INBOX"] == [] and len(folders["Triage/Klar"]) == 1 and len(folders["Triage/Mangler"]) == 1
    assert len(osmtp.wait_for(2, timeout=10)) == 2 and osmtp.auth_ok == 1
    assert "method=XOAUTH2" in (odovecot.base / "dovecot.log").read_text()
    assert issuer.issued == 2  # one token per connection's source (IMAP, SMTP)
    no_token_in(issuer, p.stdout, p.stderr)


def test_once_with_token_commands_and_oauthbearer(tmp_path, odovecot, osmtp, ca, issuer):
    plain = tmp_path / "imap-token"
    plain.write_text(issuer.issue() + "\n")
    as_json = tmp_path / "smtp-token.json"
    as_json.write_text(json.dumps({"access_token": issuer.issue(), "expires_in": 3600}))
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer,
                   imap_command=["/bin/cat", str(plain)], smtp_command=["/bin/cat", str(as_json)])
    env.config.write_text(env.config.read_text().replace('mechanism = "xoauth2"', 'mechanism = "oauthbearer"', 1))
    odovecot.append(referral(message_id="<c1@aalborg.dk>"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    assert place(odovecot.folder_messages())["INBOX"] == []
    assert len(osmtp.wait_for(1, timeout=10)) == 1
    assert "method=OAUTHBEARER" in (odovecot.base / "dovecot.log").read_text()
    no_token_in(issuer, p.stdout, p.stderr)


def test_a_token_expiring_during_idle_is_renewed_in_time_and_no_mail_is_lost(tmp_path, odovecot, osmtp, ca, issuer):
    """Tokens live 8 s and are renewed 4 s before expiry: the daemon signs in again every ~4 s
    while idling and keeps draining; the UID checkpoint carries over, nothing is triaged twice."""
    issuer.lifetime = 8
    secret = secret_file(tmp_path / "client-secret")
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer, imap_secret=secret, smtp_secret=secret, renew=4)
    proc = env.start()
    n = 6
    try:
        odovecot.append(referral(message_id="<idle0@aalborg.dk>"))
        assert len(osmtp.wait_for(1, timeout=60)) == 1  # running for sure (start-up time varies)
        for i in range(1, n):
            time.sleep(2.5)
            odovecot.append(referral(message_id=f"<idle{i}@aalborg.dk>"))
        assert len(osmtp.wait_for(n, timeout=30)) == n
        time.sleep(1.0)
    finally:
        out, err = stop(proc)
    evs = events(out)
    names = [e["event"] for e in evs]
    assert names.count("imap_token_renewal") >= 2, " ".join(e["timestamp"][14:22] + e["event"] for e in evs)
    assert names.count("imap_connected") == names.count("imap_token_renewal") + 1
    # each session signed in again before its token (8 s) ran out
    stamps = [dt.datetime.fromisoformat(e["timestamp"]) for e in evs if e["event"] == "imap_connected"]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    assert gaps and max(gaps) < issuer.lifetime, gaps
    assert "imap_error" not in names and "imap_auth_failed" not in names and "smtp_auth_failed" not in names
    assert names.count("message_triaged") == n and "message_resumed" not in names
    assert len(osmtp.messages) == n and sorted(m["message"]["In-Reply-To"] for m in osmtp.messages) == \
        sorted(f"<idle{i}@aalborg.dk>" for i in range(n))
    assert place(odovecot.folder_messages())["INBOX"] == []
    no_token_in(issuer, out, err)


def test_refused_tokens_and_a_wrong_secret_are_logged_once_then_recover(tmp_path, odovecot, osmtp, ca, issuer):
    """IMAP: the server refuses every token (consent withdrawn), then accepts again. SMTP: the
    client secret is wrong, then corrected in its file. Each failure is logged once, retried
    with backoff; afterwards every message is filed and answered exactly once."""
    imap_secret = secret_file(tmp_path / "imap-secret")
    smtp_secret = secret_file(tmp_path / "smtp-secret", "wrong-secret")
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer, imap_secret=imap_secret, smtp_secret=smtp_secret)
    odovecot.append(referral(message_id="<r1@aalborg.dk>"))
    odovecot.append(referral(BODY.replace("CPR: 120385-1233\n", ""), message_id="<r2@aalborg.dk>"))
    issuer.refuse = True
    proc = env.start()
    try:
        wait_until(lambda: issuer.introspected >= 3)  # three refused sign-ins (2 s apart: Dovecot)
        assert len(place(odovecot.folder_messages())["INBOX"]) == 2
        issuer.refuse = False
        deadline = time.monotonic() + 30
        while place(odovecot.folder_messages())["INBOX"] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert place(odovecot.folder_messages())["INBOX"] == []
        wait_until(lambda: issuer.bad_client >= 3)  # the outbox tries and fails several times
        assert osmtp.messages == []
        secret_file(smtp_secret)
        assert len(osmtp.wait_for(2, timeout=20)) == 2
        time.sleep(1.5)
    finally:
        out, err = stop(proc)
    names = [e["event"] for e in events(out)]
    assert names.count("imap_auth_failed") == 1 and names.count("imap_auth_recovered") == 1, names
    assert names.count("smtp_auth_failed") == 1 and names.count("smtp_auth_recovered") == 1, names
    failed = next(e for e in events(out) if e["event"] == "imap_auth_failed")
    assert "AUTHENTICATIONFAILED" in failed["error"]
    failed = next(e for e in events(out) if e["event"] == "smtp_auth_failed")
    assert "AADSTS7000215" in failed["error"]
    assert len(osmtp.messages) == 2
    assert sorted(m["message"]["In-Reply-To"] for m in osmtp.messages) == ["<r1@aalborg.dk>", "<r2@aalborg.dk>"]
    no_token_in(issuer, out, err)


def test_a_revoked_cached_token_is_dropped_and_a_new_one_fetched(tmp_path, odovecot, osmtp, ca, issuer):
    secret = secret_file(tmp_path / "client-secret")
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer, imap_secret=secret, smtp_secret=secret)
    env.config.write_text(env.config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 10\nidle = false\npoll_seconds = 1", 1))
    proc = env.start()
    try:
        odovecot.append(referral(message_id="<v1@aalborg.dk>"))
        assert len(osmtp.wait_for(1, timeout=20)) == 1
        issued = issuer.issued
        issuer.revoke_all()  # the tokens in hand (an hour to go) no longer work
        odovecot.stop()  # the session ends: the daemon signs in again with its cached token
        time.sleep(0.5)
        odovecot.start()
        odovecot.append(referral(message_id="<v2@aalborg.dk>"))
        assert len(osmtp.wait_for(2, timeout=30)) == 2
        time.sleep(1.0)
    finally:
        out, err = stop(proc)
    names = [e["event"] for e in events(out)]
    assert names.count("imap_auth_failed") == 1 and "imap_auth_recovered" in names, names
    assert names.count("smtp_auth_failed") == 1 and "smtp_auth_recovered" in names, names
    assert issuer.issued == issued + 2 and len(osmtp.messages) == 2


# --- intake check-config --connect ---------------------------------------------------------------
def test_connect_check_with_oauth2(tmp_path, odovecot, osmtp, ca, issuer):
    from intake.service import connectcheck

    secret = secret_file(tmp_path / "client-secret")
    env = OAuthEnv(tmp_path, odovecot, osmtp.port, ca, issuer, imap_secret=secret, smtp_secret=secret)
    results = connectcheck.run(load_settings(env.config))
    text = "\n".join(f"{'ok ' if ok else 'NO '} {line}" for ok, line in results)
    assert all(ok for ok, _ in results), text
    for expected in ("imap: TLSv1.", "certificate valid for localhost",
                     "imap: SASL offered LOGIN OAUTHBEARER PLAIN XOAUTH2", "will use XOAUTH2",
                     "imap: signed in as socialmedicin (OAuth 2.0, token from msal",
                     "imap: folder INBOX selectable", "keywords allowed",
                     "Triage/Klar, Triage/Mangler", "creatable", "MOVE present", "UIDPLUS present", "IDLE present",
                     "smtp: TLSv1.", "smtp: EHLO extensions", "AUTH offered XOAUTH2",
                     "smtp: signed in as socialmedicin (OAuth 2.0"):
        assert expected in text, (expected, text)
    assert not [f for f in odovecot.folder_messages() if "intake-check" in f]  # the probe is gone
    no_token_in(issuer, text)
    issuer.refuse = True  # and a refusal says so, with the server's words
    results = connectcheck.run(load_settings(env.config))
    bad = [line for ok, line in results if not ok]
    assert any("imap: sign-in as socialmedicin" in b and "AUTHENTICATIONFAILED" in b for b in bad), bad
    assert any("smtp: sign-in as socialmedicin" in b and "535" in b for b in bad), bad


def test_connect_check_with_password(tmp_path, dovecot, ca):
    from intake.edges.devservers import SmtpSink
    from intake.service import connectcheck

    sink = SmtpSink(ca, auth=("socialmedicin", "smtp-secret")).start()
    try:
        env = Env(tmp_path, dovecot, sink.port, ca)
        secret_file(tmp_path / "smtp-password", "smtp-secret")
        env.config.write_text(env.config.read_text().replace(
            'security = "starttls"', f'security = "starttls"\nusername = "socialmedicin"\n'
                                     f'password_file = "{tmp_path / "smtp-password"}"'))
        dovecot.append(referral())
        results = connectcheck.run(load_settings(env.config))
        text = "\n".join(f"{'ok ' if ok else 'NO '} {line}" for ok, line in results)
        assert all(ok for ok, _ in results), text
        for expected in ("configured password (LOGIN)", "imap: signed in as socialmedicin (password)",
                         "INBOX selectable (1 messages)", "smtp: signed in as socialmedicin (password)",
                         "AUTH offered LOGIN PLAIN"):
            assert expected in text, (expected, text)
        (tmp_path / "imap-password").write_text("wrong\n")
        bad = [line for ok, line in connectcheck.run(load_settings(env.config)) if not ok]
        assert bad and "imap: sign-in as socialmedicin (password) refused: [AUTHENTICATIONFAILED]" in bad[0], bad
    finally:
        sink.stop()
