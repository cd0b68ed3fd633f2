"""The configuration: one TOML file validated by pydantic, every key but three sections optional.

`load_settings(None)` gives the built-in defaults (what `intake triage` uses with no --config).
Secrets are never in the file: keys ending in `_file` name files (systemd `LoadCredential=`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

DEFAULT_MUNICIPALITIES: list[tuple[str, str]] = [
    ("Aalborg Kommune", "aalborg.dk"),
    ("Brønderslev Kommune", "bronderslev.dk"),
    ("Frederikshavn Kommune", "frederikshavn.dk"),
    ("Hjørring Kommune", "hjoerring.dk"),
    ("Jammerbugt Kommune", "jammerbugt.dk"),
    ("Læsø Kommune", "laesoe.dk"),
    ("Mariagerfjord Kommune", "mariagerfjord.dk"),
    ("Morsø Kommune", "mors.dk"),
    ("Rebild Kommune", "rebild.dk"),
    ("Thisted Kommune", "thisted.dk"),
    ("Vesthimmerlands Kommune", "vesthimmerland.dk"),
]

Security = Literal["tls", "starttls", "plain"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Municipality(_Section):
    name: str
    domain: str
    # Mail from this municipality needs a valid signature that covers it, by one of the signers
    # below (so at least one must be given).
    require_signature: bool = False
    # Who may sign for the municipality: OpenPGP primary key fingerprints (full, not key IDs) ...
    pgp_fingerprints: list[str] = Field(default_factory=list)
    # ... S/MIME certificates whose subject holds every attribute of one of these RFC 4514 names
    # (e.g. "O=Aalborg Kommune // CVR:29189420,C=DK") ...
    smime_subjects: list[str] = Field(default_factory=list)
    # ... or S/MIME certificates for these addresses ("@aalborg.dk": any address at that domain).
    # The certificate must name the From address in any case.
    smime_emails: list[str] = Field(default_factory=list)

    @field_validator("domain")
    @classmethod
    def _lower(cls, v: str) -> str:
        v = v.strip().lower().rstrip(".")
        if not v or "@" in v or " " in v:
            raise ValueError(f"not a domain: {v!r}")
        return v

    @field_validator("pgp_fingerprints")
    @classmethod
    def _fingerprints(cls, v: list[str]) -> list[str]:
        from intake.edges.secure import normalise_fingerprint

        out = [normalise_fingerprint(f) for f in v]
        for raw, f in zip(v, out):
            if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", f):
                raise ValueError(f"not a full OpenPGP fingerprint (40 or 64 hex digits): {raw!r}")
        return out

    @field_validator("smime_subjects")
    @classmethod
    def _subjects(cls, v: list[str]) -> list[str]:
        from intake.edges.secure import subject_attributes

        identifying = {"2.5.4.3", "2.5.4.10", "2.5.4.5", "2.5.4.97", "1.2.840.113549.1.9.1"}
        for dn in v:
            try:
                attrs = subject_attributes(dn)
            except ValueError:
                raise ValueError(f"not an RFC 4514 subject: {dn!r}") from None
            if not {oid for oid, _ in attrs} & identifying:
                raise ValueError(f"subject {dn!r} names no one: give CN, O, serialNumber, "
                                 "organizationIdentifier or emailAddress")
        return v

    @model_validator(mode="after")
    def _signers(self):  # noqa: ANN202
        emails = []
        for e in self.smime_emails:
            e = e.strip().lower()
            domain = e.rpartition("@")[2]
            if "@" not in e or " " in e or not domain or not (domain == self.domain or domain.endswith("." + self.domain)):
                raise ValueError(f"{self.name}: smime_emails entry {e!r} is not an address or @domain at {self.domain}")
            emails.append(e)
        self.smime_emails = emails
        if self.require_signature and not (self.pgp_fingerprints or self.smime_subjects or self.smime_emails):
            raise ValueError(f"{self.name}: require_signature needs the signers: pgp_fingerprints, "
                             "smime_subjects or smime_emails")
        return self


class Limits(_Section):
    """Bounds that keep one hostile message from costing unbounded time or memory."""

    max_header_bytes: int = 256 * 1024  # whole header block of the top-level message
    max_multipart_boundaries: int = 200  # "boundary=" declarations in the raw message
    max_parts: int = 500
    max_encoded_words: int = 5000  # RFC 2047 "=?" in the whole message
    max_text_chars: int = 2_000_000  # text kept from the body parts
    max_read_chars: int = 300_000  # of it, read for fields and routing (a referral is far shorter)
    big_message_bytes: int = 4 * 1024 * 1024  # above this, large bodies bypass the parser
    max_document_bytes: int = 15 * 1024 * 1024  # attached PDF/DOCX up to this size are read as forms
    # The triage runs in a child process with these limits (intake.edges.worker); a message that hits
    # one is filed in the manual folder with reason too_costly.
    worker: bool = True
    worker_processes: int = 0  # workers that triage a batch side by side; 0: one per core
    worker_memory_mb: int = 512
    worker_cpu_seconds: float = 10.0
    worker_wall_seconds: float = 30.0


class TriageConfig(_Section):
    own_addresses: list[str] = Field(default_factory=lambda: ["socialmedicin@rn.dk"])
    municipalities: list[Municipality] = Field(
        default_factory=lambda: [Municipality(name=n, domain=d) for n, d in DEFAULT_MUNICIPALITIES]
    )
    rules_file: Path | None = None  # default: config/rules.toml shipped with the project
    templates_dir: Path | None = None  # default: templates/ shipped with the project
    unit_name: str = "Socialmedicinsk Enhed, Region Nordjylland"
    limits: Limits = Field(default_factory=Limits)


class OAuth2Config(_Section):
    """OAuth 2.0 sign-in (Microsoft 365 / Exchange Online): where the access token comes from.

    Either the app's client credentials (msal: `tenant_id`, `client_id` and `client_secret_file`
    or `certificate_file`, key and certificate in one PEM) or `token_command` (an argv that prints the
    token, or JSON with access_token and expires_in, on stdout). See intake.edges.oauth."""

    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"  # IMAP; OAUTHBEARER only if offered
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    certificate_file: Path | None = None  # PEM: the private key and its certificate (SHA-256 thumbprint)
    certificate_thumbprint: str | None = None  # SHA-1 hex (Entra portal): only for a key without its certificate
    scope: str = "https://outlook.office365.com/.default"
    authority: str | None = None  # default https://login.microsoftonline.com/<tenant_id>
    ca_file: Path | None = None  # CA bundle for the token endpoint (default: the system's)
    token_command: list[str] | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)  # token endpoint or token_command
    renew_before_seconds: float = Field(default=300.0, gt=0, le=300)  # msal's own margin is 5 min

    @model_validator(mode="after")
    def _source(self):  # noqa: ANN202
        if self.token_command is not None:
            if not self.token_command:
                raise ValueError("oauth2.token_command is an empty list")
            if self.client_id or self.client_secret_file or self.certificate_file:
                raise ValueError("oauth2: give token_command or client credentials, not both")
            return self
        if not (self.tenant_id and self.client_id):
            raise ValueError("oauth2 needs tenant_id and client_id (or token_command)")
        if bool(self.client_secret_file) == bool(self.certificate_file):
            raise ValueError("oauth2 needs client_secret_file or certificate_file (one of them)")
        return self

    @property
    def authority_url(self) -> str:
        return self.authority or f"https://login.microsoftonline.com/{self.tenant_id}"


class _Connection(_Section):
    """What IMAP and SMTP share: plaintext is refused unless explicitly allowed; sign-in by
    password (`password_file`) or OAuth 2.0 (`auth = "oauth2"` and an `oauth2` table)."""

    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Config | None = None

    @model_validator(mode="after")
    def _plaintext(self):  # noqa: ANN202
        if self.security == "plain" and not self.allow_plaintext:
            raise ValueError(f'{self._section}.security = "plain" is refused unless allow_plaintext = true')
        return self

    @model_validator(mode="after")
    def _auth(self):  # noqa: ANN202
        if self.auth == "oauth2":
            if self.oauth2 is None:
                raise ValueError(f'{self._section}.auth = "oauth2" needs a [{self._section}.oauth2] table')
            if not self.username:
                raise ValueError(f'{self._section}.auth = "oauth2" needs username (the mailbox address)')
        elif self._section == "mailbox" and self.password_file is None:
            raise ValueError("mailbox.password_file is required (or auth = \"oauth2\")")
        return self


class MailboxConfig(_Connection):
    _section = "mailbox"
    host: str
    port: int = 993
    security: Security = "tls"
    ca_file: Path | None = None
    allow_plaintext: bool = False
    username: str
    password_file: Path | None = None  # required with auth = "password"
    folder: str = "INBOX"
    idle: bool = True  # use IDLE when the server offers it
    idle_renew_seconds: int = 25 * 60  # re-issue IDLE well before the 29-minute limit
    poll_seconds: int = 60  # when the server has no IDLE
    timeout_seconds: float = 60.0  # no answer within this: the connection is stalled, renew it
    max_message_bytes: int = 100 * 1024 * 1024  # RFC822.SIZE above this: manual, unparsed
    fetch_batch: int = 50  # messages fetched, decided and committed together
    batch_bytes: int = 32 * 1024 * 1024  # and at most this many bytes of them at once
    # where the triage folders live: "" = at the top of the personal namespace; unset = the
    # prefix the server's NAMESPACE names (e.g. "INBOX." on Cyrus); folder names in this file
    # always use "/" between levels, the server's own delimiter is used on the wire
    folder_prefix: str | None = None


class SmtpConfig(_Connection):
    _section = "smtp"
    host: str
    port: int = 587
    security: Security = "starttls"
    ca_file: Path | None = None
    allow_plaintext: bool = False
    username: str | None = None
    password_file: Path | None = None
    from_address: str = "socialmedicin@rn.dk"
    from_name: str = "Socialmedicinsk Enhed"
    timeout_seconds: float = 30.0


class StoreConfig(_Section):
    url: str = "sqlite:///intake.db"
    hmac_key_file: Path | None = None  # secret for the keyed CPR hash (see README for the default)


class FoldersConfig(_Section):
    accepted: str = "Triage/Klar"
    incomplete: str = "Triage/Mangler"
    redirect: str = "Triage/Mediconnect"
    manual: str = "Triage/Manuel"
    ignored: str = "Triage/Ignoreret"

    def for_decision(self, decision: str) -> str:
        return getattr(self, decision)


class OutboxConfig(_Section):
    retry_initial_seconds: float = 5.0
    retry_max_seconds: float = 15 * 60.0
    max_attempts: int = 200  # about two days at the cap; then the entry is marked failed


class DaemonConfig(_Section):
    reconnect_initial_seconds: float = 1.0
    reconnect_max_seconds: float = 300.0
    set_keywords: bool = True
    # file manual messages in a subfolder per reason (Triage/Manuel/<reason>): "auto" only when
    # the server takes no keywords (Exchange) or set_keywords is off
    reason_subfolders: Literal["auto", "always", "never"] = "auto"
    lock_check_seconds: float = Field(default=30.0, gt=0)  # is the store's instance lock still ours?


class MetricsConfig(_Section):
    """Prometheus metrics (intake.service.metrics); off unless `listen` or `textfile` is set."""

    listen: str | None = None  # "127.0.0.1:9464": HTTP /metrics (keep it on loopback)
    textfile: Path | None = None  # node_exporter textfile collector file, rewritten atomically
    textfile_interval_seconds: float = Field(default=15.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            from intake.service.metrics import parse_listen

            parse_listen(v)
        return v


class HealthConfig(_Section):
    """The daemon's status file and the limits `intake health` judges by (intake.service.health)."""

    status_file: Path | None = None  # default: health.json beside the SQLite store
    interval_seconds: float = Field(default=10.0, gt=0)  # how often the daemon rewrites it
    max_sync_age_minutes: float = Field(default=10.0, gt=0)  # no successful sync for longer: unhealthy
    max_outbox_age_minutes: float = Field(default=30.0, gt=0)  # a reply waiting longer: unhealthy


class CasesConfig(_Section):
    """Deadlines in working days (weekends, Danish public holidays and `extra_closed_days` off)."""

    reminder_after_working_days: int = 5  # an incomplete case gets one reminder after this
    close_after_working_days: int = 15  # and is closed as unanswered after this
    response_working_days: int = 10  # SLA for accepted referrals (seed 000): the due date
    extra_closed_days: list[str] = Field(default_factory=lambda: ["06-05", "12-24", "12-31"])  # MM-DD or YYYY-MM-DD
    staff_address: str | None = None  # daily digest and closing notices; none: not sent
    digest_hour: int = 7  # local time, working days only
    timezone: str = "Europe/Copenhagen"
    scheduler_interval_seconds: float = 60.0


class ReplyLimits(_Section):
    """Automatic replies per recipient (RFC 3834's spirit); past a limit the message goes to a
    person instead of being answered."""

    per_recipient_per_10_minutes: int = 10
    per_recipient_per_day: int = 40


DECISIONS: tuple[str, ...] = ("accepted", "incomplete", "redirect", "manual", "ignored")


class RetentionByDecision(_Section):
    """Days raw content and personal data are kept, per decision. For a case (accepted,
    incomplete, redirect) they count from when it was closed or redirected — an open case keeps
    everything — and its case decision governs all its messages; for a message with no case
    (manual, ignored) from when it was filed. Unset: `security.retention_days`."""

    accepted: int | None = Field(default=None, ge=0)
    incomplete: int | None = Field(default=None, ge=0)
    redirect: int | None = Field(default=None, ge=0)
    manual: int | None = Field(default=None, ge=0)
    ignored: int | None = Field(default=7, ge=0)  # machine mail: bounces, auto-replies, lists


class SecurityConfig(_Section):
    """Encrypted and signed mail, sender authenticity, data at rest."""

    gnupghome: Path | None = None  # keyring: the unit's OpenPGP key, partners' public keys
    gpg_passphrase_file: Path | None = None  # passphrase of the unit's key, if it has one
    smime_cert_file: Path | None = None  # the unit's S/MIME certificate (PEM)
    smime_key_file: Path | None = None  # its private key (PEM, a credentials file)
    smime_ca_file: Path | None = None  # CA bundle that signed S/MIME must chain to (OCES)
    authserv_ids: list[str] = Field(default_factory=list)  # trusted Authentication-Results
    archive_key_file: Path | None = None  # OpenPGP public key: raw messages encrypted at rest
    archive_dir: Path | None = None  # where encrypted raw messages are kept
    retention_days: int = Field(default=30, ge=0)  # the default of retention_days_by_decision
    retention_days_by_decision: RetentionByDecision = Field(default_factory=RetentionByDecision)
    _unwrapper: Any = PrivateAttr(default=None)  # built on first use (intake.core.triage)

    def retention_for(self, decision: str) -> int:
        """Days kept for a decision (an unknown one: the longest configured)."""
        by = self.retention_days_by_decision
        if decision not in DECISIONS:
            return max(self.retention_for(d) for d in DECISIONS)
        days = getattr(by, decision)
        return self.retention_days if days is None else days


class Settings(_Section):
    mailbox: MailboxConfig | None = None
    smtp: SmtpConfig | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    folders: FoldersConfig = Field(default_factory=FoldersConfig)
    triage: TriageConfig = Field(default_factory=TriageConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    reply_limits: ReplyLimits = Field(default_factory=ReplyLimits)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @property
    def own_addresses(self) -> set[str]:
        own = {a.strip().lower() for a in self.triage.own_addresses}
        if self.smtp:
            own.add(self.smtp.from_address.strip().lower())
        return own

    @property
    def reply_from(self) -> str:
        return self.smtp.from_address if self.smtp else self.triage.own_addresses[0]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid (message says which key)."""


def load_settings(path: str | Path | None) -> Settings:
    if path is None:
        return Settings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {p} is not valid TOML: {e}") from e
    try:
        settings = Settings.model_validate(data)
    except Exception as e:  # pydantic.ValidationError: say which key
        raise ConfigError(f"config {p} is invalid:\n{e}") from e
    # Relative paths in the file are relative to the file.
    base = p.resolve().parent
    t = settings.triage
    if t.rules_file and not t.rules_file.is_absolute():
        t.rules_file = base / t.rules_file
    if t.templates_dir and not t.templates_dir.is_absolute():
        t.templates_dir = base / t.templates_dir
    return settings


def read_secret(path: Path | None, private: bool = False) -> str | None:
    """Read a secret from a credentials file; trailing newline stripped. `private`: refuse a
    file that group or others may read (systemd credentials under $CREDENTIALS_DIRECTORY are
    the service's own and pass)."""
    if path is None:
        return None
    try:
        if private:
            check_private(Path(path))
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"cannot read secret file {path}: {e.strerror}") from e


def check_private(path: Path) -> None:
    """ConfigError unless only the owner may read `path` (sign-in secrets, private keys)."""
    import os
    import stat

    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and Path(path).resolve().is_relative_to(Path(creds).resolve()):
        return
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"secret file {path} may be read by others (mode {mode:o}): chmod 600 {path}")
