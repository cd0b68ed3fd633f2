#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: unit tests and the real-server tests
# (a private Dovecot, Cyrus IMAP, PostgreSQL and an aiosmtpd SMTP server are started by the tests
# themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
