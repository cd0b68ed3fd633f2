"""Write the schema-only SQL dumps of a released store layout, one per dialect, from the code at
that commit: `python tests/migration_fixtures/make_dumps.py COMMIT [STORE_PATH]`.

The store module of COMMIT (`git show COMMIT:STORE_PATH`, default intake/store.py) is imported
alone in a child process and its tables are made the way that build made them (create_all),
on a fresh SQLite file and on a private PostgreSQL (Debian's postgresql, as in the tests). The
schema is then dumped with the database's own tools: `sqlite3 FILE .schema` and
`pg_dump --schema-only --no-owner --no-privileges`. Output: COMMIT.sqlite.sql and
COMMIT.postgresql.sql beside this script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

CREATE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("released_store", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules["released_store"] = mod  # its annotations are resolved through it
spec.loader.exec_module(mod)
from sqlmodel import SQLModel, create_engine
SQLModel.metadata.create_all(create_engine(sys.argv[2]))
"""


def pg_dump_clean(sql: str) -> str:
    """pg_dump's output without comments, psql meta-commands and blank runs."""
    out = [ln for ln in sql.splitlines() if not ln.startswith("--") and not ln.startswith("\\")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def main(commit: str, store_path: str = "intake/store.py") -> None:
    sys.path.insert(0, str(ROOT))
    from intake.edges.devservers import Postgres

    source = subprocess.run(["git", "show", f"{commit}:{store_path}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    work = Path(tempfile.mkdtemp(prefix="dumps-", dir="/tmp"))
    os.chmod(work, 0o755)  # the PostgreSQL user reaches its folder
    try:
        module = work / "released_store.py"
        module.write_text(source)
        db = work / "store.db"
        subprocess.run([sys.executable, "-c", CREATE, str(module), f"sqlite:///{db}"], check=True)
        schema = subprocess.run(["sqlite3", str(db), ".schema"], check=True, capture_output=True,
                                text=True).stdout
        header = f"-- store schema of {commit} ({store_path}), SQLite, made by make_dumps.py\n"
        (HERE / f"{commit}.sqlite.sql").write_text(header + schema)

        pg = Postgres(work / "pg").start()
        try:
            subprocess.run([sys.executable, "-c", CREATE, str(module), pg.url], check=True)
            dump = subprocess.run([str(pg.bin / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
                                   "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "postgres"],
                                  check=True, capture_output=True, text=True).stdout
        finally:
            pg.stop()
        header = f"-- store schema of {commit} ({store_path}), PostgreSQL, made by make_dumps.py\n"
        (HERE / f"{commit}.postgresql.sql").write_text(header + pg_dump_clean(dump))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
