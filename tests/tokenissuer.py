"""A local OAuth 2.0 token issuer over HTTPS for the OAuth tests, and the servers that ask it.

`TokenIssuer` plays Microsoft Entra for msal (OpenID discovery and the v2.0 token endpoint,
client credentials with a secret) and answers RFC 7662 introspection for Dovecot's oauth2
passdb and for `OAuthSmtpSink` (aiosmtpd with AUTH XOAUTH2). Tokens are opaque, with a short
configurable lifetime; they can be revoked, and the issuer can refuse all of them (`refuse`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from intake.edges.devservers import SmtpSink, TestCA

TENANT = "test-tenant"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


class TokenIssuer:
    def __init__(self, ca: TestCA, client_secret: str = "right-secret", lifetime: float = 3600.0,
                 username: str = "socialmedicin") -> None:
        self.ca = ca
        self.client_secret = client_secret
        self.client_certificate: bytes | None = None  # PEM: client assertions signed by its key
        self.assertions = 0
        self.lifetime = lifetime
        self.username = username  # the mailbox the app may use (Exchange: FullAccess / SendAs)
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.revoked: set[str] = set()
        self.refuse = False  # introspection says inactive for every token (consent withdrawn)
        self.issued = 0
        self.bad_client = 0
        self.introspected = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"https://localhost:{self.server.server_address[1]}"

    @property
    def authority(self) -> str:
        return f"{self.base}/{TENANT}"

    @property
    def introspection_url(self) -> str:
        return f"{self.base}/introspect"

    def issue(self) -> str:
        with self.lock:
            tok = "at-" + secrets.token_urlsafe(24)
            self.tokens[tok] = time.time() + self.lifetime
            self.issued += 1
            return tok

    def introspect(self, token: str) -> dict:
        with self.lock:
            self.introspected += 1
            exp = self.tokens.get(token)
            if exp is None or token in self.revoked or self.refuse or exp <= time.time():
                return {"active": False}
            return {"active": True, "username": self.username, "exp": int(exp), "client_id": CLIENT_ID}

    def client_ok(self, form: dict) -> bool:
        """The client secret, or a client assertion (RFC 7523) signed by the registered
        certificate's key, for this token endpoint, naming the client, with its thumbprint."""
        if "client_assertion" not in form:
            return form.get("client_secret") == self.client_secret
        if self.client_certificate is None:
            return False
        import base64
        import hashlib

        import jwt
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_pem_x509_certificate(self.client_certificate)
        der = cert.public_bytes(Encoding.DER)
        thumbs = {"x5t#S256": hashlib.sha256(der).digest(), "x5t": hashlib.sha1(der).digest()}  # noqa: S324
        try:
            header = jwt.get_unverified_header(form["client_assertion"])
            claims = jwt.decode(form["client_assertion"], cert.public_key(), algorithms=["PS256", "RS256"],
                                audience=f"{self.base}/{TENANT}/oauth2/v2.0/token", issuer=CLIENT_ID)
        except jwt.PyJWTError:
            return False
        named = [k for k in thumbs if k in header]
        ok = bool(named) and all(base64.urlsafe_b64decode(header[k] + "==") == thumbs[k] for k in named)
        if ok and claims.get("sub") == CLIENT_ID:
            self.assertions += 1
            return True
        return False

    def revoke_all(self) -> None:
        with self.lock:
            self.revoked |= set(self.tokens)

    def start(self) -> "TokenIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002 - quiet
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                path = urlparse(self.path).path
                if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                    b = issuer.base
                    return self._json(200, {
                        "issuer": f"{b}/{TENANT}/v2.0",
                        "authorization_endpoint": f"{b}/{TENANT}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{b}/{TENANT}/oauth2/v2.0/token",
                        "introspection_endpoint": issuer.introspection_url})
                return self._json(404, {"error": "not_found"})

            def do_POST(self):  # noqa: N802
                path = urlparse(self.path).path
                n = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
                if path == f"/{TENANT}/oauth2/v2.0/token":
                    if form.get("grant_type") != "client_credentials":
                        return self._json(400, {"error": "unsupported_grant_type"})
                    if form.get("client_id") != CLIENT_ID or not issuer.client_ok(form):
                        with issuer.lock:
                            issuer.bad_client += 1
                        return self._json(401, {
                            "error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided. "
                                                 f"Trace ID: {secrets.token_hex(8)}"})
                    if form.get("scope") != "https://outlook.office365.com/.default":
                        return self._json(400, {"error": "invalid_scope",
                                                "error_description": "AADSTS70011: invalid scope"})
                    return self._json(200, {"token_type": "Bearer", "expires_in": int(issuer.lifetime),
                                            "ext_expires_in": int(issuer.lifetime),
                                            "access_token": issuer.issue()})
                if path == "/introspect":
                    return self._json(200, issuer.introspect(form.get("token", "")))
                return self._json(404, {"error": "not_found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = self.ca.server_context().wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def dovecot_oauth2(issuer: TokenIssuer, folder: Path) -> dict:
    """Keyword arguments for `Dovecot(...)`: passdb oauth2 validating tokens at the issuer."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = folder / "issuer-ca.pem"  # readable by Dovecot's auth process (not under pytest's tmp)
    ca.write_bytes(issuer.ca.ca_file.read_bytes())
    ca.chmod(0o644)
    conf = folder / "dovecot-oauth2.conf.ext"
    conf.write_text(f"""introspection_url = {issuer.introspection_url}
introspection_mode = post
force_introspection = yes
tls_ca_cert_file = {ca}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
""")
    conf.chmod(0o644)
    passdb = f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {conf}
}}"""
    return dict(passdb=passdb, auth_mechanisms="xoauth2 oauthbearer")


class OAuthSmtpSink(SmtpSink):
    """The SMTP sink with AUTH XOAUTH2 only (required), each token checked at the issuer."""

    def __init__(self, ca: TestCA, issuer: TokenIssuer, user: str = "socialmedicin") -> None:
        super().__init__(ca)
        self.issuer = issuer
        self.user = user
        self.auth_ok = 0
        self.auth_failed = 0

    def start(self) -> "OAuthSmtpSink":
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                from email import message_from_bytes, policy

                raw = envelope.original_content or envelope.content
                with sink.lock:
                    sink.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                                          "raw": raw, "received_at": time.time(),
                                          "message": message_from_bytes(raw, policy=policy.default)})
                return "250 OK"

            async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd custom mechanism
                blob = args[1] if len(args) > 1 else None
                if blob is None:
                    got = await server.challenge_auth("")
                    if not isinstance(got, bytes):
                        return AuthResult(success=False, handled=True)
                    raw = got
                else:
                    raw = b64decode(blob)
                fields = dict(p.split("=", 1) for p in raw.decode().split("\x01") if "=" in p)
                token = fields.get("auth", "").removeprefix("Bearer ")
                info = sink.issuer.introspect(token)
                if info.get("active") and info.get("username") == fields.get("user") == sink.user:
                    sink.auth_ok += 1
                    return AuthResult(success=True, auth_data=fields.get("user"))
                sink.auth_failed += 1
                # XOAUTH2: the error as a JSON challenge, the client answers with an empty line
                await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
                return AuthResult(success=False, handled=False,
                                  message="535 5.7.3 Authentication unsuccessful")

        ctx = self.ca.server_context()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, auth_required=True, ready_timeout=10,
                                     auth_exclude_mechanism=["LOGIN", "PLAIN"])
        self.controller.start()
        return self
