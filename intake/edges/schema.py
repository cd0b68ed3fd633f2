"""The store's schema version: which Alembic revision a store is at (`status`), bringing it to this
build's head (`upgrade`), and the start-up check (`ensure_current`): an empty store is made at
head through the migrations, a store at any other version is refused with the command that
fixes it. Developers add a revision with `python -m intake.edges.schema revision -m "..."`.

States: empty (no tables), current, behind (an older revision: `intake db upgrade`), ahead (a
revision this build does not know: a newer build made it), unversioned (tables but no
alembic_version: a store from before migrations existed; its tables are compared with the
layout of every known revision, and `upgrade` stamps the one they match before upgrading).

Schema changes run in one transaction that no other schema change runs beside: SQLite
`BEGIN IMMEDIATE` with foreign keys off and a `foreign_key_check` before the commit (the
procedure SQLite documents for rebuilding tables), PostgreSQL a transaction-scoped advisory lock.
Two processes that find the same empty store make it once.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool, StaticPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
DEFAULT_CONFIG = "/etc/intake/intake.toml"  # the unit file's; the CLI names the one it was given
# one advisory lock key per database for schema changes (not the daemon's instance lock)
PG_SCHEMA_KEY = int.from_bytes(hashlib.sha256(b"sme-intake:schema").digest()[:8], "big", signed=True)


@dataclasses.dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the store's revision; for "unversioned" the one its tables match
    head: str
    state: str  # empty | current | behind | ahead | unversioned


class SchemaMismatch(Exception):
    """The store is not at this build's head and this process may not change that."""

    def __init__(self, status: SchemaStatus, config: str | None = None) -> None:
        self.status = status
        super().__init__(self.message(config))

    def message(self, config: str | None = None) -> str:
        """One line for ops, naming the command (with `config`, the file they started us with)."""
        st, cmd = self.status, f"intake db upgrade --config {config or DEFAULT_CONFIG}"
        if st.state == "behind":
            return f"store schema is behind ({st.current} < {st.head}): run '{cmd}'"
        if st.state == "ahead":
            return (f"store schema is ahead ({st.current}, unknown to this build; its head is {st.head}): "
                    "a newer build made it; run that build, or restore the backup taken before it upgraded")
        if st.state == "unversioned" and st.current:
            return (f"store schema has no version (made before migrations; its tables match {st.current}, "
                    f"head {st.head}): run '{cmd}'")
        if st.state == "unversioned":
            return ("store schema has no version and its tables match no released layout: "
                    f"'intake db upgrade' cannot bring it to {st.head}; restore a backup made by a released build")
        if st.state == "empty":
            return f"the store is empty: the daemon makes it at {st.head} when it starts, or run '{cmd}'"
        return f"store schema is {st.state} ({st.current} / {st.head})"


# --- Alembic, without an alembic.ini ----------------------------------------------------------
def _config(conn: Connection | None = None):  # noqa: ANN202 - alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s")  # versions/0003_outbox_resolution.py
    cfg.attributes["connection"] = conn
    return cfg


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, tuple[str, ...]]:
    """revision -> the revisions it follows, read from versions/*.py without importing Alembic
    (half a second per process that only checks a current store); a test holds it to Alembic's."""
    graph = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        names = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                names[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                names[node.target.id] = node.value  # revision: str = "..." (Alembic's own template)
        if "revision" not in names:
            continue
        down = ast.literal_eval(names["down_revision"]) if "down_revision" in names else None
        graph[ast.literal_eval(names["revision"])] = (down,) if isinstance(down, str) else tuple(down or ())
    return graph


def head() -> str:
    """This build's head revision."""
    graph = _graph()
    heads = set(graph) - {d for downs in graph.values() for d in downs}
    if len(heads) != 1:
        raise RuntimeError(f"the store's migrations must have one head, they have {sorted(heads)}")
    return heads.pop()


def revisions() -> list[str]:
    """Every known revision, base first."""
    graph, out = _graph(), []

    def visit(rev: str) -> None:
        if rev not in out:
            for down in graph[rev]:
                visit(down)
            out.append(rev)

    visit(head())
    return out


# --- connections ------------------------------------------------------------------------------
def _sqlite_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
    dbapi_conn.isolation_level = None  # the driver begins nothing itself: _sqlite_begin does
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: another process may be making the file WAL
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=OFF")  # a table rebuilt in batch mode keeps its rows' references
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("intake_write") else "BEGIN")


def _is_memory(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:")


def _engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    eng = create_engine(url, poolclass=StaticPool if _is_memory(url) else NullPool)
    event.listen(eng, "connect", _sqlite_connect)
    event.listen(eng, "begin", _sqlite_begin)
    return eng


@contextmanager
def _connection(url: str, engine: Engine | None, write: bool) -> Iterator[Connection]:
    """One transaction on the store; with `write`, no other schema change runs beside it.
    `engine` only for an in-memory SQLite store, which lives in its owner's engine."""
    own = engine is None or not _is_memory(url)
    eng = _engine(url) if own else engine
    try:
        with eng.connect() as conn:
            if write:
                conn = conn.execution_options(intake_write=True)
            with conn.begin():
                if write and conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_SCHEMA_KEY})
                yield conn
                if write and conn.dialect.name == "sqlite":
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration would leave {len(broken)} rows with broken "
                                           "foreign keys; nothing was changed")
    finally:
        if own:
            eng.dispose()


# --- layouts: what each revision's tables look like -------------------------------------------
def _layout(conn: Connection) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Each table's column names and index names (the same on SQLite and PostgreSQL)."""
    insp = inspect(conn)
    return {t: (frozenset(c["name"] for c in insp.get_columns(t)),
                frozenset(i["name"] for i in insp.get_indexes(t)
                          if i.get("name") and not i.get("duplicates_constraint")))
            for t in insp.get_table_names() if t != VERSION_TABLE}


@functools.lru_cache(maxsize=1)
def _layouts() -> dict[str, dict]:
    """Every revision's layout, made by running the revisions one by one in an in-memory SQLite."""
    from alembic import command

    out = {}
    eng = _engine("sqlite://")
    try:
        with eng.connect() as conn, conn.begin():
            for rev in revisions():
                command.upgrade(_config(conn), rev)
                out[rev] = _layout(conn)
    finally:
        eng.dispose()
    return out


def _matching_revision(conn: Connection) -> str | None:
    mine = _layout(conn)
    return next((rev for rev, layout in _layouts().items() if layout == mine), None)


# --- status, upgrade, the start-up check ------------------------------------------------------
def _versions(conn: Connection) -> tuple[str, ...]:
    return tuple(sorted(r for (r,) in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))))


def _read(conn: Connection) -> SchemaStatus:
    h = head()
    names = set(inspect(conn).get_table_names())
    revs = _versions(conn) if VERSION_TABLE in names else ()
    if not revs:
        if not names - {VERSION_TABLE}:
            return SchemaStatus(None, h, "empty")
        return SchemaStatus(_matching_revision(conn), h, "unversioned")
    known = set(revisions())
    unknown = [r for r in revs if r not in known]
    if unknown:
        return SchemaStatus(unknown[0], h, "ahead")
    if revs == (h,):
        return SchemaStatus(h, h, "current")
    return SchemaStatus(",".join(revs), h, "behind")


def status(url: str, *, engine: Engine | None = None) -> SchemaStatus:
    """Where the store at `url` stands; changes nothing (a missing SQLite file is not created)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and not _is_memory(url) and not Path(u.database).exists():
        return SchemaStatus(None, head(), "empty")
    with _connection(url, engine, write=False) as conn:
        return _read(conn)


def upgrade(url: str, *, to: str = "head", engine: Engine | None = None) -> tuple[str | None, str]:
    """Bring the store to this build's head (or to revision `to`); (from, to). An empty store is
    made, an unversioned one is stamped with the revision its tables match first. Running it
    again changes nothing. SchemaMismatch for a store that is ahead or matches no layout.
    The caller keeps daemons away (the CLI holds the store's instance lock)."""
    from alembic import command

    with _connection(url, engine, write=True) as conn:
        before = _read(conn)
        if before.state == "ahead" or (before.state == "unversioned" and before.current is None):
            raise SchemaMismatch(before)
        cfg = _config(conn)
        if before.state == "unversioned":
            command.stamp(cfg, before.current)
        command.upgrade(cfg, to)
        after = _versions(conn)
    return before.current, ",".join(after)


def ensure_current(url: str, *, config: str | None = None, engine: Engine | None = None) -> None:
    """The check before a process uses the store: an empty store is made at head (through the
    migrations, so it is versioned), a current one passes, any other raises SchemaMismatch
    naming the command (`config`: the config file to name in it)."""
    st = status(url, engine=engine)
    if st.state == "empty":
        from alembic import command

        with _connection(url, engine, write=True) as conn:
            st = _read(conn)  # again under the lock: another process may have made it meanwhile
            if st.state == "empty":
                command.upgrade(_config(conn), "head")
                st = _read(conn)
    if st.state != "current":
        raise SchemaMismatch(st, config)


# --- for developers: a new revision ----------------------------------------------------------
def new_revision(message: str) -> Path:
    """Write versions/NNNN_<slug>.py with the operations that take a store at head to the models
    (Alembic's autogenerate against a scratch SQLite store). Read it and finish it by hand: data
    moves, server defaults for NOT NULL columns, renames (autogenerate sees drop + add)."""
    from alembic import command

    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    rev_id = f"{len(revisions()) + 1:04d}_{slug}"[:32].rstrip("_")
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'scratch.db'}"
        upgrade(url)
        with _connection(url, None, write=True) as conn:
            script = command.revision(_config(conn), message=message, autogenerate=True, rev_id=rev_id)
    for cached in (_graph, _layouts):
        cached.cache_clear()
    return Path(script.path)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m intake.edges.schema",
                                 description="the store's migrations, for developers")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("revision", help="autogenerate a new revision from the models")
    r.add_argument("-m", "--message", required=True, help="what changed, e.g. 'outbox resolved_by'")
    sub.add_parser("heads", help="print the head revision and the history")
    args = ap.parse_args(argv)
    if args.command == "revision":
        path = new_revision(args.message)
        print(f"{path}\nread it, then run: .venv/bin/python -m pytest -q tests/test_migrations.py")
    else:
        print("\n".join(revisions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
