"""`intake check-config`: everything the daemon would stumble on at start, found before it starts.

The config (TOML, every key and type), the rules file, every template rendered with sample data,
the secret files (there, readable, not open to group or world), the files the config names, the
store (its folder, its schema revision), and the effective configuration printed with secrets
hidden (paths, never contents). One line per problem, never a traceback. No network unless
`connect` (then `intake.service.connectcheck.run(settings)`, when this version has it). Fast
enough for systemd's ExecStartPre=.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from intake.config import ConfigError, Settings, load_settings

# *_file keys whose file holds a secret: must not be open to group or world
SECRET_FILES = ("mailbox.password_file", "smtp.password_file", "store.hmac_key_file",
                "security.gpg_passphrase_file", "security.smime_key_file")
SECRET_KEYS = ("client_secret_file", "certificate_file")  # [*.oauth2]: the app's secret, its private key
REDIRECT_REASONS = ("klinisk_funktion", "aabenbar_sag", "rehabiliteringsteam", "loebende_sag", None)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _validation_lines(err) -> list[str]:  # noqa: ANN001 - pydantic.ValidationError
    lines = []
    for e in err.errors():
        where = _loc(tuple(p for p in e["loc"] if p not in ("function-after", "function-before")))
        if e["type"] == "extra_forbidden":
            lines.append(f"config: unknown key {where}")
        elif e["type"] == "missing":
            lines.append(f"config: {where}: required key missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"config: {where}: {msg}" + (f" (got {e['input']!r})" if e["type"] not in (
                "value_error", "assertion_error") and not isinstance(e.get("input"), (dict, list)) else ""))
    return lines


def load(path: Path, report: Report) -> Settings | None:
    """The settings, or None with the reasons in `report` (one line each)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        report.problems.append(f"config: cannot read {path}: {e.strerror}")
        return None
    except UnicodeDecodeError:
        report.problems.append(f"config: {path} is not UTF-8 text")
        return None
    except tomllib.TOMLDecodeError as e:
        report.problems.append(f"config: {path} is not valid TOML: {e}")
        return None
    from pydantic import ValidationError

    try:
        Settings.model_validate(data)
    except ValidationError as e:
        report.problems += _validation_lines(e)
        return None
    try:
        settings = load_settings(path)  # the same, with relative paths resolved as the daemon does
    except ConfigError as e:
        report.problems.append(f"config: {str(e).splitlines()[0]}")
        return None
    report.ok.append(f"config {path}")
    return settings


# --- files -------------------------------------------------------------------------------------
def _credential(path: Path) -> bool:
    """A systemd credential: its access is systemd's business (owner and ACLs), not the mode bits."""
    roots = [os.environ.get("CREDENTIALS_DIRECTORY"), "/run/credentials"]
    return any(r and str(path).startswith(r.rstrip("/") + "/") for r in roots)


def check_file(key: str, path: Path, report: Report, secret: bool) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        report.problems.append(f"{key}: {path} does not exist")
        return
    except OSError as e:
        report.problems.append(f"{key}: {path}: {e.strerror}")
        return
    if not stat.S_ISREG(st.st_mode):
        report.problems.append(f"{key}: {path} is not a file")
        return
    if not os.access(path, os.R_OK):
        report.problems.append(f"{key}: {path} is not readable by this user (uid {os.getuid()})")
        return
    if secret and st.st_mode & 0o077 and not _credential(path):
        report.problems.append(f"{key}: {path} is mode {stat.S_IMODE(st.st_mode):04o}, open to group or "
                               f"others; it holds a secret: chmod 600 {path}")
        return
    report.ok.append(f"{key} {path}" + (" (secret, private)" if secret else ""))


def check_files(settings: Settings, report: Report) -> None:
    """Every *_file key the config sets, and the auto-created HMAC key beside a SQLite store."""
    def walk(prefix: str, values: dict) -> None:
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(name, value)
            elif key.endswith("_file") and value is not None and name != "triage.rules_file":
                check_file(name, Path(value), report, name in SECRET_FILES or key in SECRET_KEYS)

    walk("", settings.model_dump())
    sec = settings.security
    if sec.gnupghome is not None:
        _check_private_dir("security.gnupghome", Path(sec.gnupghome), report)
    if sec.archive_dir is not None and Path(sec.archive_dir).exists() and not Path(sec.archive_dir).is_dir():
        report.problems.append(f"security.archive_dir: {sec.archive_dir} is not a folder")  # else made at start
    if bool(sec.archive_dir) != bool(sec.archive_key_file):
        report.problems.append("security: archive_key_file and archive_dir go together (raw messages are "
                               "archived only when both are set)")


def _check_private_dir(key: str, path: Path, report: Report) -> None:
    if not path.is_dir():
        report.problems.append(f"{key}: {path} is not a folder")
    elif path.stat().st_mode & 0o077:
        report.problems.append(f"{key}: {path} is open to group or others; it holds private keys: chmod 700 {path}")
    else:
        report.ok.append(f"{key} {path} (private)")


# --- rules and templates -------------------------------------------------------------------------
def check_rules(settings: Settings, report: Report):  # noqa: ANN201 - Rules | None
    from intake.core.rules import load_rules
    from intake.resources import default_rules_file

    path = settings.triage.rules_file or default_rules_file()
    try:
        rules = load_rules(path)
    except FileNotFoundError:
        report.problems.append(f"triage.rules_file: {path} does not exist")
        return None
    except OSError as e:
        report.problems.append(f"triage.rules_file: {path}: {e.strerror}")
        return None
    except tomllib.TOMLDecodeError as e:
        report.problems.append(f"triage.rules_file: {path} is not valid TOML: {e}")
        return None
    except KeyError as e:
        report.problems.append(f"triage.rules_file: {path}: required key {e} missing")
        return None
    except Exception as e:  # noqa: BLE001 - a bad pattern (re.error), a wrong type: one line
        report.problems.append(f"triage.rules_file: {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return None
    report.ok.append(f"rules {path}")
    return rules


def sample_contexts(settings: Settings) -> list[tuple[str, dict]]:
    """(kind, context) pairs that take every template through its branches."""
    base = {"greeting": "Mette Sørensen", "name": "Karen Lund", "cpr": "010190-XXXX", "invalid_cpr": None,
            "masked_cpr": None, "examinations": ["psykologisk undersøgelse"], "attachment_count": 2,
            "missing": [], "redirect_reason": None, "original_subject": "Henvisning",
            "received": "25.11.2026", "case_ref": "SME-2026-00001", "due_date": "09.12.2026",
            "unit_name": settings.triage.unit_name, "from_address": settings.reply_from,
            "missing_text": "CPR-nummer", "created": "18.11.2026", "close_date": "09.12.2026"}
    out = [("acknowledgement", base),
           ("acknowledgement", {**base, "name": None, "cpr": None, "case_ref": None, "due_date": None,
                                "original_subject": None, "received": None, "attachment_count": 1}),
           ("missing_items", {**base, "missing": ["name", "cpr", "examination", "problem", "attachments"],
                              "cpr": None, "invalid_cpr": "010190-XXXX", "masked_cpr": "010190-XXXX"}),
           ("reminder", {**base, "missing": ["cpr"]}),
           ("closed_unanswered", {**base, "missing": ["cpr"]})]
    out += [("redirect", {**base, "redirect_reason": r}) for r in REDIRECT_REASONS]
    case = {"ref": "SME-2026-00001", "status": "accepted", "municipality": "Aalborg Kommune",
            "examinations": "psykologisk undersøgelse", "missing": "cpr", "reminded": True, "age": 3,
            "due": "09.12.2026", "late": 1}
    entry = {"id": 7, "state": "usikker", "kind": "acknowledgement", "to": "sagsbehandler@aalborg.dk",
             "case_ref": "SME-2026-00001", "since": "25.11.2026 08:15"}
    out.append(("digest", {"date": "25.11.2026", "new": [case], "complete": [case], "incomplete": [case],
                           "overdue": [case], "closed": [case], "outbox_attention": [entry]}))
    out.append(("digest", {"date": "25.11.2026", "new": [], "complete": [], "incomplete": [], "overdue": [],
                           "closed": [], "outbox_attention": []}))
    return out


def check_templates(settings: Settings, report: Report) -> None:
    import jinja2

    from intake.core.replies import KINDS, render
    from intake.resources import templates_dir

    folder = settings.triage.templates_dir or templates_dir()
    if not Path(folder).is_dir():
        report.problems.append(f"triage.templates_dir: {folder} is not a folder")
        return
    bad: set[str] = set()
    for kind, ctx in sample_contexts(settings):
        if kind in bad:
            continue
        try:
            subject, body = render(kind, ctx, Path(folder))
            if not subject.strip():
                raise ValueError("the subject block is empty")
        except jinja2.TemplateNotFound as e:
            report.problems.append(f"template {kind}: {e.name or e} not found in {folder}")
        except jinja2.TemplateSyntaxError as e:
            report.problems.append(f"template {kind}: syntax error in {e.name or kind} line {e.lineno}: {e.message}")
        except KeyError as e:  # no subject block
            report.problems.append(f"template {kind}: no {{% block {str(e).strip(chr(39))} %}}")
        except Exception as e:  # noqa: BLE001 - UndefinedError and the like: one line
            report.problems.append(f"template {kind}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        else:
            continue
        bad.add(kind)
    if not bad:
        report.ok.append(f"templates ({len(KINDS)}) in {folder}")


# --- store ---------------------------------------------------------------------------------------
def check_store(settings: Settings, report: Report, connect: bool, config: str | None = None) -> None:
    from sqlalchemy.engine import make_url

    from intake.edges.instance_lock import safe_url

    url = settings.store.url
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        report.problems.append(f"store.url: not a database URL: {safe_url(url) if '://' in url else url!r}")
        return
    backend = u.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        report.problems.append(f"store.url: {backend} is not supported (SQLite or PostgreSQL)")
        return
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            report.problems.append("store.url: an in-memory store forgets everything at exit")
            return
        db = Path(u.database)
        folder = db.resolve().parent
        if not folder.is_dir():
            report.problems.append(f"store.url: the folder {folder} does not exist")
            return
        if not os.access(folder, os.W_OK | os.X_OK):
            report.problems.append(f"store.url: the folder {folder} is not writable by this user")
            return
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            report.problems.append(f"store.url: {db} is not readable and writable by this user")
            return
        if db.exists() and _exposed(db):
            report.problems.append(f"store.url: {db} can be read by other users (personal data): chmod 600 {db}")
        key = db.with_name(db.name + ".hmac-key")
        if settings.store.hmac_key_file is None and key.exists():
            check_file("store (HMAC key beside it)", key, report, secret=True)
    elif settings.store.hmac_key_file is None:
        report.problems.append("store.hmac_key_file is required for a PostgreSQL store")
    if backend == "postgresql" and not connect:
        report.ok.append(f"store {safe_url(url)} (schema not checked: no network without --connect)")
        return
    check_schema(url, report, config)


def _exposed(db: Path) -> bool:
    """Others (or the group) may read the file and reach it through its folder."""
    f, d = db.stat().st_mode, db.resolve().parent.stat().st_mode
    return bool((f & 0o004 and d & 0o001) or (f & 0o040 and d & 0o010))


def check_schema(url: str, report: Report, config: str | None = None) -> None:
    """Empty (made at start) or current: fine; anything else the daemon refuses: say the fix."""
    from intake.edges.instance_lock import safe_url

    try:
        from intake.edges.schema import SchemaMismatch, status
    except ImportError:
        report.ok.append(f"store {safe_url(url)} (no schema versions in this intake)")
        return
    try:
        st = status(url)
    except Exception as e:  # noqa: BLE001 - cannot connect, cannot read: one line
        report.problems.append(f"store: cannot read the schema revision of {safe_url(url)}: {type(e).__name__}")
        return
    if st.state in ("empty", "current"):
        report.ok.append(f"store {safe_url(url)} schema {st.state}" + (f" ({st.current})" if st.current else "")
                         + (": made at start" if st.state == "empty" else ""))
    else:
        report.problems.append("store: " + SchemaMismatch(st).message(config))


# --- effective configuration ---------------------------------------------------------------------
def effective(settings: Settings) -> list[str]:
    """`section.key = value` lines; secrets are files, shown by path; a URL's password hidden."""
    from intake.edges.instance_lock import safe_url

    data = settings.model_dump(mode="json")
    lines = []

    def walk(prefix: str, value) -> None:  # noqa: ANN001
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
            return
        if prefix == "store.url" and isinstance(value, str):
            try:
                value = safe_url(value)
            except Exception:  # noqa: BLE001
                value = "(not a URL)"
        lines.append(f"{prefix} = {json.dumps(value, ensure_ascii=False)}")

    walk("", data)
    return lines


def run(path: str | Path, connect: bool = False) -> Report:
    report = Report()
    settings = load(Path(path), report)
    if settings is None:
        return report
    report.effective = effective(settings)
    if settings.mailbox is None or settings.smtp is None:
        report.problems.append("config: intake run needs the [mailbox] and [smtp] sections")
    check_files(settings, report)
    check_rules(settings, report)
    check_templates(settings, report)
    check_store(settings, report, connect, str(path))
    if connect:
        try:
            from intake.service import connectcheck
        except ImportError:
            report.problems.append("connect: connection checks are not available in this version of intake")
        else:
            try:
                results = connectcheck.run(settings)
            except Exception as e:  # noqa: BLE001 - one line, never a traceback
                results = [(False, f"connection check failed: {type(e).__name__}")]
            for ok, line in results:
                (report.ok if ok else report.problems).append(f"connect: {line}")
    return report
