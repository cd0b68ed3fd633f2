"""Schema migrations (issue 11) on real SQLite files and a real PostgreSQL: a store made by the
first released build is upgraded with every row intact; the daemon and the staff commands refuse
a store that is behind, ahead or unversioned with one line naming the command; `intake db
upgrade` / `db current`; the models and the migrations never drift apart (compare_metadata).

The released layout: stop 6 (the first landing, the first build with a store) ended at commit
d98b889, whose intake/store.py is the baseline revision. Its schema is checked in as
tests/migration_fixtures/d98b889.sqlite.sql and d98b889.postgresql.sql, made with

    .venv/bin/python tests/migration_fixtures/make_dumps.py d98b889

which imports that commit's intake/store.py alone (git show) in a child process, lets it create
its tables (create_all, as that build did) on a fresh SQLite file and on a private PostgreSQL,
and dumps them with `sqlite3 FILE .schema` and `pg_dump --schema-only --no-owner --no-privileges`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, create_engine, insert, text
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel, select

from intake import cli
from intake.edges import schema
from intake.edges.devservers import Postgres, write_config
from intake.edges.instance_lock import acquire
from intake.edges.schema import SchemaMismatch
from intake.edges.store import AuditEvent, Case, Checkpoint, MessageRecord, OutboxEntry, Store, utcnow
from tests.conftest import ROOT, tempfile_dir

FIXTURES = Path(__file__).resolve().parent / "migration_fixtures"
RELEASED = "d98b889"
BASELINE, HEAD = "0001_baseline", schema.head()
# Columns added since the released layout, with the value its rows get. A revision that adds a
# column adds it here (the upgrade test fails until it does): old rows must get a known value.
NEW_COLUMNS = {"messages": {"evidence": None}}
UTC = dt.timezone.utc


# --- a PostgreSQL cluster for the module, a fresh database per test -----------------------------
@pytest.fixture(scope="module")
def pg_cluster():
    base = Path(tempfile.mkdtemp(prefix="pg-", dir=tempfile_dir()))
    pg = Postgres(base).start()
    yield pg
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


_db_counter = iter(range(1, 10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def store_url(kind, tmp_path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'intake.db'}"
    pg = request.getfixturevalue("pg_cluster")
    name = f"mig_{os.getpid()}_{next(_db_counter)}"
    eng = create_engine(pg.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return pg.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def config(tmp_path, store_url, ca) -> Path:
    """An intake config for the store (the daemon's mailbox and SMTP are never reached)."""
    key = tmp_path / "hmac"
    key.write_text("k" * 64)
    path = write_config(tmp_path, SimpleNamespace(users={"socialmedicin": "x"}, imaps_port=1), 1, ca)
    default = f'url = "sqlite:///{tmp_path / "intake.db"}"\n'
    path.write_text(path.read_text().replace(default, f'url = "{store_url}"\nhmac_key_file = "{key}"\n'))
    return path


def engine(url: str):
    return create_engine(url, poolclass=NullPool)


# --- the released store: its schema from the dump, rows as that build wrote them ----------------
def load_released(url: str) -> None:
    sql = (FIXTURES / f"{RELEASED}.{url.split(':', 1)[0].split('+')[0]}.sql").read_text()
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.executescript(sql)
        con.close()
        return
    eng = engine(url)
    raw = eng.raw_connection()  # the dump is many statements: the driver's simple query protocol
    try:
        raw.cursor().execute(sql)
        raw.commit()
    finally:
        raw.close()
        eng.dispose()


def t(day: int, hour: int, minute: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, 7, micro, tzinfo=UTC)


REPLY = ("Subject: Re: Henvisning til socialmedicinsk speciallægeerklæring [SME-2026-00001]\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n\r\n"
         "Kære Mette Bach\r\n\r\nVi har modtaget henvisningen af borger født 120385-XXXX.\r\n").encode()


def fill(url: str) -> dict[str, list[dict]]:
    """Cases, messages, outbox entries, audit rows and a checkpoint, written with the released
    layout's columns only (as that build wrote them); returns the rows as read back."""
    eng = engine(url)
    md = MetaData()
    md.reflect(eng)
    tb = md.tables
    with eng.begin() as c:
        def add(table: str, **row) -> int:
            return c.execute(insert(tb[table]).values(**row)).inserted_primary_key[0]

        case_common = dict(redirect_reason=None, waiting_since=None, reminded_at=None, accepted_at=None,
                           due_date=None, closed_at=None, close_reason=None, purged_at=None)
        accepted = add("cases", **{**case_common, **dict(
            ref="SME-2026-00001", status="accepted", created_at=t(2, 8, 14, 123456), updated_at=t(2, 8, 15),
            municipality="Aalborg Kommune", sender="jobcenter@aalborg.dk", client_name="Karen Lund Østergaard",
            cpr_masked="120385-XXXX", cpr_hmac="9f2c" * 16, examinations="socialmedicinsk_erklaering,"
            "psykologisk_undersoegelse", missing="", has_problem=True, attachments=2,
            accepted_at=t(2, 8, 15), due_date=dt.date(2026, 11, 16))})
        incomplete = add("cases", **{**case_common, **dict(
            ref="SME-2026-00002", status="incomplete", created_at=t(3, 13, 2), updated_at=t(10, 9),
            municipality="Hjørring Kommune", sender="sagsbehandler@hjoerring.dk", client_name="Jens Peter Møller",
            cpr_masked=None, cpr_hmac=None, examinations="psykiatrisk_erklaering", missing="cpr,problem",
            has_problem=False, attachments=0, waiting_since=t(3, 13, 2), reminded_at=t(10, 9))})
        purged = add("cases", **{**case_common, **dict(
            ref="SME-2026-00003", status="closed", created_at=t(4, 10, 30), updated_at=t(20, 2),
            municipality="Frederikshavn Kommune", sender="visitation@frederikshavn.dk", client_name=None,
            cpr_masked=None, cpr_hmac=None, examinations="stoettende_samtaler", missing="name",
            has_problem=False, attachments=1, waiting_since=t(4, 10, 31), reminded_at=t(11, 9),
            closed_at=t(18, 9), close_reason="ubesvaret efter 15 arbejdsdage", purged_at=t(20, 2))})

        msg_common = dict(reason=None, encryption=None, signature_verdict=None, signer=None,
                          archive_path=None, purged_at=None, filed_at=None, filed_folder=None, case_id=None)
        m1 = add("messages", **{**msg_common, **dict(
            message_id="<CAF7x9=henvisning-1@aalborg.dk>", content_hash="a1" * 32, folder="INBOX",
            uidvalidity=1732262400, uid=101, size=48213, received_at=t(2, 8, 14, 5), decision="accepted",
            missing="", examinations="socialmedicinsk_erklaering,psykologisk_undersoegelse", attachments=2,
            sender="jobcenter@aalborg.dk", municipality="Aalborg Kommune", target_folder="Triage/Klar",
            state="filed", filed_at=t(2, 8, 15), filed_folder="Triage/Klar", followup=False,
            encryption="pgp", signature_verdict="valid", signer="3AA5C34371567BD2" * 2 + "00AA00BB",
            archive_path="/var/lib/intake/archive/2026/11/a1a1.eml.gpg", case_id=accepted)})
        m2 = add("messages", **{**msg_common, **dict(
            message_id="<20261103130201.4411@hjoerring.dk>", content_hash="b2" * 32, folder="INBOX",
            uidvalidity=1732262400, uid=102, size=9120, received_at=t(3, 13, 2), decision="incomplete",
            missing="cpr,problem", examinations="psykiatrisk_erklaering", attachments=0,
            sender="sagsbehandler@hjoerring.dk", municipality="Hjørring Kommune", target_folder="Triage/Mangler",
            state="filed", filed_at=t(3, 13, 3), filed_folder="Triage/Mangler", followup=False,
            case_id=incomplete)})
        add("messages", **{**msg_common, **dict(
            message_id="<svar-7@hjoerring.dk>", content_hash="c3" * 32, folder="INBOX",
            uidvalidity=1732262400, uid=103, size=4410, received_at=t(5, 7, 58), decision="incomplete",
            missing="problem", examinations="psykiatrisk_erklaering", attachments=0,
            sender="sagsbehandler@hjoerring.dk", municipality="Hjørring Kommune", target_folder="Triage/Mangler",
            state="decided", followup=True, case_id=incomplete)})
        add("messages", **{**msg_common, **dict(
            message_id=None, content_hash="d4" * 32, folder="INBOX", uidvalidity=1732262400, uid=104,
            size=131_072_000, received_at=t(6, 22, 1), decision="manual", reason="too_large", missing="",
            examinations="", attachments=0, sender=None, municipality=None, target_folder="Triage/Manuel",
            state="filed", filed_at=t(6, 22, 2), filed_folder="Triage/Manuel", followup=False)})
        m5 = add("messages", **{**msg_common, **dict(
            message_id="<frh-8812@frederikshavn.dk>", content_hash="e5" * 32, folder="INBOX",
            uidvalidity=1732262400, uid=105, size=20400, received_at=t(4, 10, 30), decision="incomplete",
            missing="name", examinations="stoettende_samtaler", attachments=1,
            sender="visitation@frederikshavn.dk", municipality="Frederikshavn Kommune",
            target_folder="Triage/Mangler", state="filed", filed_at=t(4, 10, 31), filed_folder="Triage/Mangler",
            followup=False, purged_at=t(20, 2), case_id=purged)})

        out_common = dict(last_error=None, sent_at=None, message_record_id=None, case_id=None)
        add("outbox", **{**out_common, **dict(
            dedupe_key="reply:<CAF7x9=henvisning-1@aalborg.dk>", message_record_id=m1, case_id=accepted,
            kind="acknowledgement", to_addr="jobcenter@aalborg.dk", from_addr="socialmedicin@rn.dk",
            reply_message_id="<intake.1.a8f3@rn.dk>", raw=REPLY, state="sent", attempts=1,
            next_attempt_at=t(2, 8, 15), created_at=t(2, 8, 15), sent_at=t(2, 8, 16))})
        add("outbox", **{**out_common, **dict(
            dedupe_key="reply:<20261103130201.4411@hjoerring.dk>", message_record_id=m2, case_id=incomplete,
            kind="missing_items", to_addr="sagsbehandler@hjoerring.dk", from_addr="socialmedicin@rn.dk",
            reply_message_id="<intake.2.77c1@rn.dk>", raw=REPLY.replace(b"00001", b"00002") + b"\xff\x00\x80",
            state="uncertain", attempts=1, next_attempt_at=t(3, 13, 3), created_at=t(3, 13, 3),
            last_error="interrupted during SMTP delivery; not resent (at most once)")})
        add("outbox", **{**out_common, **dict(
            dedupe_key="reminder:SME-2026-00002:2026-11-10", case_id=incomplete, kind="reminder",
            to_addr="sagsbehandler@hjoerring.dk", from_addr="socialmedicin@rn.dk",
            reply_message_id="<intake.3.0b9e@rn.dk>", raw=REPLY, state="pending", attempts=2,
            next_attempt_at=t(10, 9, 4), created_at=t(10, 9), last_error="SMTP 451 4.7.1 try again later")})
        add("outbox", **{**out_common, **dict(
            dedupe_key="reply:<frh-8812@frederikshavn.dk>", message_record_id=m5, case_id=purged,
            kind="missing_items", to_addr="visitation@frederikshavn.dk", from_addr="socialmedicin@rn.dk",
            reply_message_id="<intake.4.c2d4@rn.dk>", raw=b"", state="sent", attempts=1,
            next_attempt_at=t(4, 10, 31), created_at=t(4, 10, 31), sent_at=t(4, 10, 32))})

        add("audit", at=t(12, 14, 3), actor="mette.bach", action="reveal", case_ref="SME-2026-00001", detail=None)
        add("audit", at=t(12, 14, 9), actor="mette.bach", action="export", case_ref="SME-2026-00001",
            detail="1 messages, 3 files to /home/mette.bach/udtraek")
        add("checkpoints", folder="INBOX", uidvalidity=1732262400, last_uid=105, updated_at=t(6, 22, 2))
    rows = read_rows(eng)
    eng.dispose()
    return rows


def read_rows(eng) -> dict[str, list[dict]]:
    md = MetaData()
    md.reflect(eng)
    with eng.connect() as c:
        return {name: [dict(r._mapping) for r in c.execute(select(tb).order_by(*tb.primary_key.columns))]
                for name, tb in md.tables.items() if name != "alembic_version"}


def version_rows(url: str) -> list[str]:
    eng = engine(url)
    with eng.connect() as c:
        rows = [r for (r,) in c.execute(text("SELECT version_num FROM alembic_version"))]
    eng.dispose()
    return rows


def drift(url: str, metadata: MetaData = SQLModel.metadata) -> list:
    """What autogenerate would write to take the store at `url` to `metadata`."""
    eng = engine(url)
    with eng.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
    eng.dispose()
    return diff


def intake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


# --- the tests ----------------------------------------------------------------------------------
def test_the_revision_reader_agrees_with_alembic():
    """schema.py reads versions/ without Alembic (start-up time); it must see what Alembic sees."""
    script = ScriptDirectory.from_config(schema._config())
    assert script.get_heads() == [schema.head()]
    assert [s.revision for s in reversed(list(script.walk_revisions()))] == schema.revisions()
    assert schema.revisions()[:2] == [BASELINE, "0002_messages_evidence"]
    for s in script.walk_revisions():
        assert Path(s.path).name == f"{s.revision}.py"
    assert (schema.MIGRATIONS / "script.py.mako").is_file()


def test_a_fresh_store_is_made_at_head_and_matches_the_models(store_url):
    Store(store_url)
    assert schema.status(store_url) == schema.SchemaStatus(HEAD, HEAD, "current")
    assert version_rows(store_url) == [HEAD]
    assert drift(store_url) == []
    Store(store_url)  # a current store simply opens
    assert version_rows(store_url) == [HEAD]


def test_a_model_change_without_a_migration_is_caught(tmp_path):
    """The drift check above fails for a model change that has no revision."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    Store(url)
    changed = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["outbox"].append_column(Column("not_in_any_revision", String, nullable=True))
    diff = drift(url, changed)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "not_in_any_revision")]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`intake ARGS` in this process (the subprocess runs are the daemon's and one upgrade)."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _structlog_back():
    yield
    structlog.reset_defaults()  # purge and remind configure logging on the captured stdout


def test_the_released_store_is_upgraded_with_every_row_intact(store_url, config, capsys):
    load_released(store_url)
    before = fill(store_url)
    assert {k: len(v) for k, v in before.items()} == {"cases": 3, "messages": 5, "outbox": 4, "audit": 2,
                                                      "checkpoints": 1}
    st = schema.status(store_url)
    assert st == schema.SchemaStatus(BASELINE, HEAD, "unversioned")
    hint = f"run 'intake db upgrade --config {config}'"

    with pytest.raises(SchemaMismatch) as e:  # what the daemon and every staff command meet
        schema.ensure_current(store_url, config=str(config))
    assert str(e.value) == ("store schema has no version (made before migrations; its tables match "
                            f"{BASELINE}, head {HEAD}): {hint}")
    code, out, err = run_cli(capsys, "db", "current", "--config", str(config))
    assert (code, out, err) == (1, f"current: {BASELINE}\nhead:    {HEAD}\nstate:   unversioned\n",
                                f"intake: {e.value}\n")

    p = intake("db", "upgrade", "--config", str(config))
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.strip() == f"store schema: {BASELINE} -> {HEAD}"
    code, out, _ = run_cli(capsys, "db", "upgrade", "--config", str(config))  # again: nothing to do
    assert (code, out) == (0, f"store schema: {HEAD} -> {HEAD} (already current)\n")
    assert run_cli(capsys, "db", "current", "--config", str(config)) == (
        0, f"current: {HEAD}\nhead:    {HEAD}\nstate:   current\n", "")
    assert version_rows(store_url) == [HEAD]

    eng = engine(store_url)
    after = read_rows(eng)
    eng.dispose()
    assert after.keys() == before.keys()
    for table, rows in before.items():
        new_cols = NEW_COLUMNS.get(table, {})
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table]):
            assert set(new) - set(old) == set(new_cols), table
            assert {k: new[k] for k in old} == old, table  # every value as it was
            assert {k: new[k] for k in new_cols} == new_cols, table  # new columns at their defaults
    assert drift(store_url) == []  # the upgraded released store is exactly the models' schema

    # and today's code works with it: reads the old rows, claims the pending reply, adds a message
    store = Store(store_url)
    with store.session() as s:
        cases = {c.ref: c for c in s.exec(select(Case))}
        assert cases["SME-2026-00001"].cpr_masked == "120385-XXXX"
        assert cases["SME-2026-00001"].created_at == t(2, 8, 14, 123456)
        assert cases["SME-2026-00001"].due_date == dt.date(2026, 11, 16)
        assert cases["SME-2026-00002"].client_name == "Jens Peter Møller"
        assert cases["SME-2026-00003"].purged_at == t(20, 2)
        msgs = list(s.exec(select(MessageRecord).order_by(MessageRecord.id)))
        assert [m.uid for m in msgs] == [101, 102, 103, 104, 105] and all(m.evidence is None for m in msgs)
        assert s.get(Checkpoint, "INBOX").last_uid == 105
        assert [a.action for a in s.exec(select(AuditEvent).order_by(AuditEvent.id))] == ["reveal", "export"]
        outbox = {o.kind + ":" + o.state: o for o in s.exec(select(OutboxEntry))}
        assert outbox["missing_items:uncertain"].raw.endswith(b"\xff\x00\x80")
        pending = outbox["reminder:pending"].id
    assert store.counts() == {"sent": 2, "uncertain": 1, "pending": 1}
    assert store.claim_reply(pending, now=t(11, 0)) == 3
    with store.session() as s:
        s.add(MessageRecord(content_hash="f6" * 32, folder="INBOX", uidvalidity=1732262400, uid=106, size=900,
                            decision="accepted", target_folder="Triage/Klar", case_id=cases["SME-2026-00001"].id,
                            evidence='{"decision": [{"source": "text", "rule": "complete"}]}'))
    with store.session() as s:
        assert s.exec(select(MessageRecord).where(MessageRecord.uid == 106)).one().id == 6
    store.engine.dispose()


def test_a_store_behind_is_refused_by_the_daemon_and_staff_until_upgraded(store_url, config, capsys):
    schema.upgrade(store_url, to=BASELINE)  # a store the baseline build made, versioned
    assert schema.status(store_url) == schema.SchemaStatus(BASELINE, HEAD, "behind")
    line = f"store schema is behind ({BASELINE} < {HEAD}): run 'intake db upgrade --config {config}'"
    with pytest.raises(SchemaMismatch) as e:
        schema.ensure_current(store_url, config=str(config))
    assert str(e.value) == line
    with pytest.raises(SchemaMismatch):
        Store(store_url)

    p = intake("run", "--config", str(config))  # fails on the store, before any IMAP connection
    assert p.returncode == 2
    assert p.stderr == f"intake: {line}\n"  # one line, no traceback

    staff = [["cases", "list"], ["cases", "show", "SME-2026-00001"], ["report", "--month", "2026-11"],
             ["purge", "--dry-run"], ["remind"], ["export", "SME-2026-00001", "--out", str(config.parent / "x")],
             ["requeue", "--all"]]
    for args in staff:
        assert run_cli(capsys, *args, "--config", str(config))[::2] == (2, f"intake: {line}\n"), args
    assert not (config.parent / "x").exists()
    assert version_rows(store_url) == [BASELINE]  # nobody touched it

    assert run_cli(capsys, "db", "upgrade", "--config", str(config)) == (
        0, f"store schema: {BASELINE} -> {HEAD}\n", "")
    assert run_cli(capsys, "cases", "list", "--config", str(config))[0] == 0
    assert drift(store_url) == []


def test_a_store_ahead_is_refused_and_left_alone(store_url, config, capsys):
    Store(store_url).engine.dispose()
    eng = engine(store_url)
    with eng.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999_from_a_newer_build'"))
    eng.dispose()
    st = schema.status(store_url)
    assert st == schema.SchemaStatus("9999_from_a_newer_build", HEAD, "ahead")
    with pytest.raises(SchemaMismatch) as e:
        schema.ensure_current(store_url, config=str(config))
    assert str(e.value) == (f"store schema is ahead (9999_from_a_newer_build, unknown to this build; its head "
                            f"is {HEAD}): a newer build made it; run that build, or restore the backup taken "
                            "before it upgraded")
    with pytest.raises(SchemaMismatch):
        schema.upgrade(store_url)
    assert run_cli(capsys, "db", "upgrade", "--config", str(config)) == (2, "", f"intake: {e.value}\n")
    assert run_cli(capsys, "db", "current", "--config", str(config))[0] == 1
    assert version_rows(store_url) == ["9999_from_a_newer_build"]


def test_tables_of_no_known_layout_are_never_touched(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    load_released(url)
    con = sqlite3.connect(tmp_path / "intake.db")
    con.execute("ALTER TABLE cases DROP COLUMN purged_at")  # a build between releases, say
    con.commit()
    con.close()
    assert schema.status(url) == schema.SchemaStatus(None, HEAD, "unversioned")
    with pytest.raises(SchemaMismatch) as e:
        schema.upgrade(url)
    assert "match no released layout" in str(e.value)
    assert "alembic_version" not in {r[0] for r in sqlite3.connect(tmp_path / "intake.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    # a store made by create_all of the models (as builds before migrations did) is taken as the head
    url2 = f"sqlite:///{tmp_path / 'today.db'}"
    SQLModel.metadata.create_all(engine(url2))
    assert schema.status(url2) == schema.SchemaStatus(HEAD, HEAD, "unversioned")
    assert schema.upgrade(url2) == (HEAD, HEAD)
    assert schema.status(url2).state == "current"


def test_db_upgrade_refuses_while_a_daemon_holds_the_store(store_url, config, capsys):
    schema.upgrade(store_url, to=BASELINE)
    lock = acquire(store_url, "intake run")  # as the daemon holds it (flock / advisory lock of its own)
    try:
        code, out, err = run_cli(capsys, "db", "upgrade", "--config", str(config))
    finally:
        lock.release()
    assert (code, out) == (2, "")
    assert err.startswith("intake: another intake daemon holds the store") and err.count("\n") == 1
    assert version_rows(store_url) == [BASELINE]
    assert run_cli(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    assert version_rows(store_url) == [HEAD]


def test_processes_that_meet_one_empty_store_make_it_once(store_url):
    code = "import sys; from intake.edges.store import Store; Store(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, store_url], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert version_rows(store_url) == [HEAD]
    assert drift(store_url) == []


def test_a_missing_sqlite_file_is_not_created_by_asking(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none' / 'intake.db'}"
    assert schema.status(url) == schema.SchemaStatus(None, HEAD, "empty")
    config = tmp_path / "intake.toml"
    config.write_text(f'[store]\nurl = "{url}"\n')
    assert run_cli(capsys, "db", "current", "--config", str(config)) == (
        1, f"current: -\nhead:    {HEAD}\nstate:   empty\n",
        f"intake: the store is empty: the daemon makes it at {HEAD} when it starts, "
        f"or run 'intake db upgrade --config {config}'\n")
    assert not (tmp_path / "none").exists()
