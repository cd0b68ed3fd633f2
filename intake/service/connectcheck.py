"""`intake check-config --connect`: sign in to IMAP and SMTP as the daemon would and say, one
line per fact, what works and what does not (TLS, SASL mechanisms, sign-in, folder rights,
keywords, extensions). Nothing is sent and no mail is touched; a missing triage folder is
reported (the daemon creates it) after a probe folder beside it was created and deleted. The
watched folder is selected read-write (to see PERMANENTFLAGS) but never closed or expunged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import ssl

from intake.config import MailboxConfig, Settings, SmtpConfig
from intake.edges.oauth import AuthFailure, imap_login, smtp_login
from intake.edges.tls import client_context

Result = list[tuple[bool, str]]


def run(settings: Settings) -> Result:
    out: Result = []
    if settings.mailbox is not None:
        out += check_imap(settings.mailbox, settings)
    if settings.smtp is not None:
        out += asyncio.run(check_smtp(settings.smtp))
    return out


def _how(cfg) -> str:  # noqa: ANN001
    if cfg.auth != "oauth2":
        return "password"
    o = cfg.oauth2
    return "OAuth 2.0, token from " + ("token_command" if o.token_command else f"msal ({o.authority_url})")


def _tls_line(proto: str, cfg, sslobj) -> str:  # noqa: ANN001
    cert = sslobj.getpeercert() or {}
    issuer = dict(x[0] for x in cert.get("issuer", ()) if x)
    left = ""
    if cert.get("notAfter"):
        end = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.timezone.utc)
        left = f", expires {end:%Y-%m-%d} ({(end - dt.datetime.now(dt.timezone.utc)).days} days)"
    return (f"{proto}: {sslobj.version()} to {cfg.host}:{cfg.port}, certificate valid for {cfg.host} "
            f"(issuer {issuer.get('organizationName') or issuer.get('commonName') or '?'}{left})")


def _offered(caps: set[bytes]) -> list[str]:
    return sorted(c.decode()[5:].upper() for c in caps if c.upper().startswith(b"AUTH="))


# --- IMAP ----------------------------------------------------------------------------------------
def check_imap(cfg: MailboxConfig, settings: Settings) -> Result:
    from imapclient import IMAPClient

    out: Result = []
    ctx = client_context(cfg.ca_file) if cfg.security != "plain" else None
    try:
        c = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.security == "tls", ssl_context=ctx,
                       timeout=cfg.timeout_seconds)
        if cfg.security == "starttls":
            c.starttls(ctx)
    except ssl.SSLCertVerificationError as e:
        return [(False, f"imap: certificate of {cfg.host}:{cfg.port} not trusted: {e.verify_message}")]
    except Exception as e:  # noqa: BLE001 - refused, unreachable, TLS failure: one line
        return [(False, f"imap: cannot connect to {cfg.host}:{cfg.port}: {type(e).__name__}: {e}")]
    try:
        sock = c.socket()
        if isinstance(sock, ssl.SSLSocket):
            out.append((True, _tls_line("imap", cfg, sock)))
        else:
            out.append((cfg.allow_plaintext, f"imap: no TLS to {cfg.host}:{cfg.port} (allow_plaintext)"))
        caps = {x.upper() for x in c.capabilities()}
        offered = _offered(caps)
        if cfg.auth == "oauth2":
            want = ["OAUTHBEARER", "XOAUTH2"] if cfg.oauth2.mechanism == "oauthbearer" else ["XOAUTH2"]
            usable = [m for m in want if m in offered]
            out.append((bool(usable), f"imap: SASL offered {' '.join(offered) or 'none'}; configured "
                                      f"{cfg.oauth2.mechanism.upper()}"
                                      + (f", will use {usable[0]}" if usable else ", not offered")))
        else:
            ok = b"LOGINDISABLED" not in caps
            out.append((ok, f"imap: SASL offered {' '.join(offered) or 'none'}; configured password (LOGIN)"
                            + ("" if ok else ": the server has LOGINDISABLED")))
        try:
            imap_login(c, cfg)
        except AuthFailure as e:
            out.append((False, f"imap: sign-in as {cfg.username} ({_how(cfg)}) refused: {e.text}"))
            return out
        out.append((True, f"imap: signed in as {cfg.username} ({_how(cfg)})"))
        out += _imap_mailbox(c, cfg, settings)
    except Exception as e:  # noqa: BLE001
        out.append((False, f"imap: {type(e).__name__}: {e}"))
    finally:
        try:
            c.logout()
        except Exception:  # noqa: BLE001
            pass
    return out


def _imap_mailbox(c, cfg: MailboxConfig, settings: Settings) -> Result:  # noqa: ANN001 - IMAPClient
    from imapclient.exceptions import IMAPClientError

    from intake.edges import imapconn

    out: Result = []
    caps = {x.upper() for x in c.capabilities()}
    naming = getattr(imapconn, "folder_naming", None)
    prefix, delim = naming(c, caps, getattr(cfg, "folder_prefix", None)) if naming else ("", "/")
    to_server = getattr(imapconn, "server_folder_name", None) or (lambda n, p, d: n.replace("/", d))
    try:
        info = c.select_folder(cfg.folder)  # read-write: EXAMINE shows no PERMANENTFLAGS
        out.append((True, f"imap: folder {cfg.folder} selectable ({info.get(b'EXISTS', 0)} messages)"))
        perm = info.get(b"PERMANENTFLAGS", ())
        kw = b"\\*" in perm
        out.append((kw, "imap: keywords allowed (PERMANENTFLAGS has \\*)" if kw else
                    "imap: keywords not allowed (no \\* in PERMANENTFLAGS): messages are filed without reason keywords"))
    except IMAPClientError as e:
        out.append((False, f"imap: folder {cfg.folder} not selectable: {e}"))
    existing = {f[2] for f in c.list_folders()}
    f = settings.folders
    missing = []
    for name in (f.accepted, f.incomplete, f.redirect, f.manual, f.ignored):
        server = to_server(name, prefix, delim)
        if server in existing:
            out.append((True, f"imap: folder {server} present"))
        else:
            missing.append(server)
    if missing:
        parent = missing[0].rpartition(delim)[0]
        probe = f"{parent}{delim if parent else ''}intake-check-{secrets.token_hex(4)}"
        try:
            c.create_folder(probe)
            c.delete_folder(probe)
            out.append((True, f"imap: folders {', '.join(missing)} absent; creatable (the daemon creates them)"))
        except IMAPClientError as e:
            out.append((False, f"imap: folders {', '.join(missing)} absent and a folder cannot be created "
                               f"there: {e}"))
    move, uidplus, idle = (x in caps for x in (b"MOVE", b"UIDPLUS", b"IDLE"))
    out.append((True, "imap: MOVE present" if move else "imap: MOVE absent (COPY + \\Deleted + EXPUNGE instead)"))
    out.append((move or uidplus, "imap: UIDPLUS present" if uidplus else
                "imap: UIDPLUS absent" + ("" if move else ": without MOVE, EXPUNGE removes every \\Deleted message")))
    out.append((True, "imap: IDLE present" if idle else
                f"imap: IDLE absent (polling every {cfg.poll_seconds} s)"))
    return out


# --- SMTP ----------------------------------------------------------------------------------------
async def check_smtp(cfg: SmtpConfig) -> Result:
    import aiosmtplib

    out: Result = []
    ctx = client_context(cfg.ca_file) if cfg.security != "plain" else None
    client = aiosmtplib.SMTP(hostname=cfg.host, port=cfg.port, timeout=cfg.timeout_seconds,
                             use_tls=cfg.security == "tls", start_tls=cfg.security == "starttls",
                             tls_context=ctx, validate_certs=cfg.security != "plain")
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return [(False, f"smtp: certificate of {cfg.host}:{cfg.port} not trusted: {cause.verify_message}")]
        return [(False, f"smtp: cannot connect to {cfg.host}:{cfg.port}: {type(e).__name__}: {e}")]
    try:
        sslobj = client.transport.get_extra_info("ssl_object") if client.transport else None
        if sslobj is not None:
            out.append((True, _tls_line("smtp", cfg, sslobj)))
        else:
            out.append((cfg.allow_plaintext, f"smtp: no TLS to {cfg.host}:{cfg.port} (allow_plaintext)"))
        if not client.esmtp_extensions:
            await client.ehlo()
        ext = sorted(k.upper() for k in client.esmtp_extensions)
        out.append((True, f"smtp: EHLO extensions {' '.join(ext) or 'none'}"))
        offered = sorted(m.upper() for m in client.server_auth_methods)
        if cfg.auth == "oauth2":
            ok = "XOAUTH2" in offered
            out.append((ok, f"smtp: AUTH offered {' '.join(offered) or 'none'}; configured XOAUTH2"
                            + ("" if ok else ", not offered (Exchange: SMTP AUTH disabled for the mailbox?)")))
        elif cfg.username:
            ok = bool({"PLAIN", "LOGIN"} & set(offered))
            out.append((ok, f"smtp: AUTH offered {' '.join(offered) or 'none'}; configured password"))
        else:
            out.append((True, f"smtp: AUTH offered {' '.join(offered) or 'none'}; no sign-in configured"))
        if cfg.auth == "oauth2" or cfg.username:
            password = None
            if cfg.auth == "password":
                from intake.config import ConfigError, read_secret
                try:
                    password = read_secret(cfg.password_file, private=True)
                except ConfigError as e:
                    out.append((False, f"smtp: {e}"))
                    return out
            try:
                await smtp_login(client, cfg, password)
                out.append((True, f"smtp: signed in as {cfg.username} ({_how(cfg)})"))
            except AuthFailure as e:
                out.append((False, f"smtp: sign-in as {cfg.username} ({_how(cfg)}) refused: {e.text}"))
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
        out.append((False, f"smtp: {type(e).__name__}: {e}"))
    finally:
        try:
            await client.quit()
        except Exception:  # noqa: BLE001
            client.close()
    return out
