#!/usr/bin/env bash
# Set up (if needed) and run the demo: local Dovecot + SMTP sink + SQLite, the example referrals
# through `intake run --once`, then what landed in each triage folder and the replies sent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/intake demo "$@"
