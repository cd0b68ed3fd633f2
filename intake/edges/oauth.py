"""OAuth 2.0 sign-in for IMAP and SMTP: get an access token, sign in with it, renew it in time.

Token sources (`[mailbox.oauth2]` / `[smtp.oauth2]`):
- client credentials through msal (`ConfidentialClientApplication.acquire_token_for_client`, an
  in-memory cache): the token's `expires_at` is kept and a new one is fetched when less than
  `renew_before_seconds` remain. After a failed sign-in the cached token is dropped (it may have
  been revoked) and the secret file is read again (it may have been corrected).
- `token_command` (isync/mutt convention): run at every sign-in; stdout is the token, or JSON with
  `access_token` and `expires_in`. A JWT's `exp` claim is read when no expires_in is given;
  otherwise the expiry is unknown and the session lasts until the server ends it.

Failures raise `AuthFailure` with the text of msal, the token endpoint or the mail server, never
the token. `AuthWatch` logs a failure once per streak, counts it (intake.service.metrics) and
keeps `last_error` for `intake health`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from intake.config import ConfigError, OAuth2Config, check_private, read_secret
from intake.service import logs

log = logs.get("intake.edges.oauth")

# where -> text of the latest authentication failure, None once signed in again (for health)
LAST_AUTH_ERROR: dict[str, str | None] = {"imap": None, "smtp": None}


class AuthFailure(Exception):
    """Signing in failed: no token, or the server refused it (or the password). `text` is what
    msal, the token endpoint or the server said; `key` identifies the kind of failure."""

    def __init__(self, text: str, key: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.key = key or text


@dataclass
class Token:
    access_token: str = field(repr=False)
    expires_at: float | None  # time.time() seconds; None: unknown

    def remaining(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - time.time()


class TokenSource:
    """An access token on demand; `token()` blocks (HTTP or a subprocess)."""

    def __init__(self, cfg: OAuth2Config) -> None:
        self.cfg = cfg
        self._token: Token | None = None
        self._lock = threading.Lock()

    def token(self) -> Token:
        with self._lock:
            t = self._token
            if t is not None and t.expires_at is not None and t.remaining() > self.cfg.renew_before_seconds:
                return t
            self._token = t = self._acquire()
            return t

    def invalidate(self) -> None:
        """The server refused the token (revoked?): fetch a fresh one next time."""
        with self._lock:
            self._token = None

    def _acquire(self) -> Token:
        raise NotImplementedError


class MsalSource(TokenSource):
    """Client credentials (secret or certificate) through msal, app-only ("/.default" scope)."""

    def __init__(self, cfg: OAuth2Config) -> None:
        super().__init__(cfg)
        self._app = None
        self._credential_digest = ""

    def _credential(self):  # noqa: ANN202
        c = self.cfg
        if c.client_secret_file:
            return read_secret(c.client_secret_file, private=True)
        pem = read_secret(c.certificate_file, private=True) or ""
        cred = {"private_key": pem}
        if "-----BEGIN CERTIFICATE" in pem:  # msal signs PS256 with the SHA-256 thumbprint (x5t#S256)
            cred["public_certificate"] = pem[pem.index("-----BEGIN CERTIFICATE"):]
        elif c.certificate_thumbprint:  # legacy: RS256 with the SHA-1 thumbprint
            cred["thumbprint"] = c.certificate_thumbprint.replace(":", "").strip()
        else:
            raise ConfigError(f"{c.certificate_file} holds no certificate: append it (PEM) or give "
                              "certificate_thumbprint")
        return cred

    def _application(self):  # noqa: ANN202
        import msal
        import requests

        cred = self._credential()
        digest = hashlib.sha256(json.dumps(cred, sort_keys=True).encode()).hexdigest()
        if self._app is None or digest != self._credential_digest:
            session = _PinnedCaSession() if self.cfg.ca_file else requests.Session()
            if self.cfg.ca_file:
                session.verify = str(self.cfg.ca_file)
            self._app = msal.ConfidentialClientApplication(
                self.cfg.client_id, client_credential=cred, authority=self.cfg.authority_url,
                token_cache=msal.TokenCache(), http_client=session, instance_discovery=False,
                timeout=self.cfg.timeout_seconds)
            self._credential_digest = digest
        return self._app

    def invalidate(self) -> None:
        super().invalidate()
        with self._lock:
            self._app = None  # and msal's cache with it

    def _acquire(self) -> Token:
        try:
            app = self._application()
            result = app.acquire_token_for_client(scopes=[self.cfg.scope])
        except ConfigError as e:
            raise AuthFailure(str(e), "secret_file") from None
        except Exception as e:  # discovery failed, endpoint unreachable, bad key
            self._app = None
            raise AuthFailure(f"token endpoint {self.cfg.authority_url}: {type(e).__name__}: {_short(str(e))}",
                              f"token:{type(e).__name__}") from None
        if "access_token" not in result:
            error = result.get("error", "error")
            text = f"{error}: {_short(result.get('error_description', ''))}"
            code = re.search(r"AADSTS\d+", text)
            raise AuthFailure(text, f"token:{error}:{code.group(0) if code else ''}")
        return Token(result["access_token"], time.time() + float(result.get("expires_in", 0)))


def _PinnedCaSession():  # noqa: N802 - a requests.Session whose CA file REQUESTS_CA_BUNDLE cannot override
    import requests

    class Session(requests.Session):
        def merge_environment_settings(self, url, proxies, stream, verify, cert):  # noqa: ANN001, ANN201
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            merged["verify"] = self.verify
            return merged

    return Session()


class CommandSource(TokenSource):
    """`token_command`: run at every sign-in (the command keeps its own cache, if any)."""

    def token(self) -> Token:
        with self._lock:
            return self._acquire()

    def _acquire(self) -> Token:
        argv = self.cfg.token_command
        try:
            p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=self.cfg.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise AuthFailure(f"token_command {argv[0]} gave no token within "
                              f"{self.cfg.timeout_seconds:g} s", "command:timeout") from None
        except OSError as e:
            raise AuthFailure(f"token_command {argv[0]}: {e.strerror}", "command:oserror") from None
        if p.returncode != 0:
            err = (p.stderr or "").strip().splitlines()
            raise AuthFailure(f"token_command {argv[0]} exited with {p.returncode}: {_short(err[-1] if err else '')}",
                              f"command:exit{p.returncode}")
        out = (p.stdout or "").strip()
        if not out:
            raise AuthFailure(f"token_command {argv[0]} printed no token", "command:empty")
        if out.startswith("{"):
            try:
                d = json.loads(out)
                tok, expires_in = d["access_token"], d.get("expires_in")
            except (ValueError, KeyError, TypeError):
                raise AuthFailure(f"token_command {argv[0]} printed JSON without access_token", "command:json") from None
            if expires_in is not None:
                return Token(str(tok), time.time() + float(expires_in))
            out = str(tok)
        out = out.splitlines()[0].strip()
        return Token(out, jwt_expiry(out))


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (not verified: only to know when to renew), else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        return None


_SOURCES: dict[int, tuple[OAuth2Config, TokenSource]] = {}
_SOURCES_LOCK = threading.Lock()


def source_for(cfg: OAuth2Config) -> TokenSource:
    """The one token source of this configuration (its cache lives as long as the process)."""
    with _SOURCES_LOCK:
        held = _SOURCES.get(id(cfg))
        if held is None or held[0] is not cfg:
            src = CommandSource(cfg) if cfg.token_command else MsalSource(cfg)
            held = _SOURCES[id(cfg)] = (cfg, src)
        return held[1]


def check_secrets(conn) -> None:  # noqa: ANN001 - MailboxConfig | SmtpConfig
    """ConfigError now (at start-up) for a missing or group/world-readable secret file."""
    paths = [conn.password_file] if conn.auth == "password" else []
    if conn.auth == "oauth2" and conn.oauth2 is not None:
        paths += [conn.oauth2.client_secret_file, conn.oauth2.certificate_file]
    for p in paths:
        if p is not None:
            try:
                check_private(Path(p))
            except OSError as e:
                raise ConfigError(f"cannot read secret file {p}: {e.strerror}") from None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _server_text(e: Exception) -> str:
    text = str(e)
    m = re.fullmatch(r"""b(['"])(.*)\1""", text.strip(), re.S)
    return _short(m.group(2) if m else text)


def renew_at(token: Token, cfg: OAuth2Config) -> float | None:
    """time.monotonic() by which a session signed in with `token` should sign in again."""
    left = token.remaining()
    if left is None:
        return None
    return time.monotonic() + max(left - cfg.renew_before_seconds, left * 0.5)


# --- IMAP --------------------------------------------------------------------------------------
def imap_login(client, cfg) -> float | None:  # noqa: ANN001 - IMAPClient, MailboxConfig
    """Sign in by password or OAuth 2.0 (XOAUTH2, or OAUTHBEARER when configured and offered).
    Returns the time.monotonic() by which to sign in again (token expiry), or None."""
    from imapclient.exceptions import LoginError

    if cfg.auth != "oauth2":
        try:
            client.login(cfg.username, read_secret(cfg.password_file, private=True) or "")
        except ConfigError as e:
            raise AuthFailure(str(e), "secret_file") from None
        except LoginError as e:
            raise AuthFailure(_server_text(e)) from None
        return None
    o = cfg.oauth2
    caps = {c.upper() for c in client.capabilities()}
    if o.mechanism == "oauthbearer" and b"AUTH=OAUTHBEARER" in caps:
        mech = "OAUTHBEARER"
    elif b"AUTH=XOAUTH2" in caps:
        mech = "XOAUTH2"
    else:
        offered = " ".join(sorted(c.decode()[5:] for c in caps if c.startswith(b"AUTH="))) or "none"
        raise AuthFailure(f"server offers no XOAUTH2 or OAUTHBEARER (AUTH: {offered})", "mechanism")
    src = source_for(o)
    tok = src.token()
    try:
        if mech == "OAUTHBEARER":
            client.oauthbearer_login(cfg.username, tok.access_token)
        else:
            client.oauth2_login(cfg.username, tok.access_token, mech="XOAUTH2")
    except LoginError as e:
        src.invalidate()
        raise AuthFailure(f"{mech}: {_server_text(e)}") from None
    return renew_at(tok, o)


# --- SMTP --------------------------------------------------------------------------------------
async def smtp_login(client, cfg, password: str | None) -> None:  # noqa: ANN001 - aiosmtplib.SMTP, SmtpConfig
    """AUTH with the password (when a username is set), or AUTH XOAUTH2 with a fresh token."""
    import aiosmtplib

    if cfg.auth != "oauth2":
        if cfg.username:
            try:
                await client.login(cfg.username, password or "")
            except aiosmtplib.SMTPAuthenticationError as e:
                raise AuthFailure(f"{e.code} {_short(e.message)}") from None
        return
    src = source_for(cfg.oauth2)
    tok = await asyncio.to_thread(src.token)
    try:
        await client.auth_xoauth2(cfg.username, tok.access_token)
    except aiosmtplib.SMTPAuthenticationError as e:
        src.invalidate()
        raise AuthFailure(f"XOAUTH2: {e.code} {_short(e.message)}", f"smtp:{e.code}") from None


# --- reporting -----------------------------------------------------------------------------------
class AuthWatch:
    """Log an authentication failure once per streak (again only if it changes), count every
    one, and keep the latest text for the health status until a sign-in succeeds."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.last_error: str | None = None
        self._key: str | None = None
        self.failures = 0

    def failed(self, e: AuthFailure, retry_in_s: float) -> None:
        self.failures += 1
        self.last_error = LAST_AUTH_ERROR[self.where] = e.text
        try:
            from intake.service import metrics
        except ImportError:
            metrics = None
        counter = getattr(metrics, "auth_failure", None)
        if counter is not None:
            try:
                counter(self.where)
            except Exception:
                pass
        if e.key != self._key:
            self._key = e.key
            log.error(f"{self.where}_auth_failed", error=e.text, retry_in_s=round(retry_in_s, 1),
                      note="logged once until it changes or a sign-in succeeds")

    def ok(self) -> None:
        if self._key is not None:
            log.info(f"{self.where}_auth_recovered", failures=self.failures)
        self._key = self.last_error = LAST_AUTH_ERROR[self.where] = None
        self.failures = 0
