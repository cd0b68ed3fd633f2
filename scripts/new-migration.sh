#!/usr/bin/env bash
# After changing a model in intake/edges/store.py: write the store's next schema revision
# (Alembic autogenerate against a scratch store at the current head), then read and finish it
# and run tests/test_migrations.py (SQLite and PostgreSQL).
#   scripts/new-migration.sh "outbox: who resolved an uncertain reply"
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 \"what changed\"" >&2; exit 2; }
exec .venv/bin/python -m intake.edges.schema revision -m "$*"
