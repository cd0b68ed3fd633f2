#!/usr/bin/env bash
# Install everything sme-intake needs on a fresh Debian machine (idempotent):
# Debian's dovecot-imapd (the tests' and the demo's IMAP server) and gnupg, Cyrus IMAP for the
# second-server tests, then a virtualenv in .venv with the project and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || need_apt+=(dovecot-imapd)
command -v gpg >/dev/null 2>&1 || need_apt+=(gnupg)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${need_apt[*]}" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Cyrus IMAP, the second IMAP server of tests/test_cyrus.py: master and tools from cyrus-common,
# saslpasswd2 from sasl2-bin. Their system services (and the MTA cyrus-common pulls in) are not
# started by this install: a policy-rc.d says no while apt runs, unless the machine has its own.
need_cyrus=()
[ -x /usr/lib/cyrus/bin/master ] || need_cyrus+=(cyrus-common)
command -v saslpasswd2 >/dev/null 2>&1 || [ -x /usr/sbin/saslpasswd2 ] || need_cyrus+=(sasl2-bin)
if [ ${#need_cyrus[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${need_cyrus[*]} (services not started)" >&2
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=1
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_cyrus[@]}" >/dev/null
  if [ -n "$own_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import intake, aiosmtpd, trustme, pytest, psycopg" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import intake, aiosmtpd, trustme, pytest, psycopg"
  touch .venv/.installed
fi

# Cyrus's imapd is in cyrus-imapd, which Debian declares in conflict with dovecot-imapd (both
# provide imap-server): unpacked into .venv/cyrus-imapd (the same version as cyrus-common), not
# installed. intake/edges/cyrus.py looks there after /usr/lib/cyrus/bin/imapd.
if [ ! -x /usr/lib/cyrus/bin/imapd ]; then
  cyrus_version=$(dpkg-query -W -f='${Version}' cyrus-common)
  if [ "$(cat .venv/cyrus-imapd/VERSION 2>/dev/null)" != "$cyrus_version" ]; then
    echo "bootstrap: unpacking cyrus-imapd $cyrus_version into .venv/cyrus-imapd" >&2
    deb_dir=$(mktemp -d)
    (cd "$deb_dir" && apt-get download -qq "cyrus-imapd=$cyrus_version" 2>&1 | grep -v unsandboxed || true)
    if ! ls "$deb_dir"/cyrus-imapd_*.deb >/dev/null 2>&1; then
      echo "bootstrap: cannot download cyrus-imapd=$cyrus_version (apt-get update; upgrade cyrus-common)" >&2
      exit 1
    fi
    rm -rf .venv/cyrus-imapd
    dpkg-deb -x "$deb_dir"/cyrus-imapd_*.deb .venv/cyrus-imapd
    echo "$cyrus_version" > .venv/cyrus-imapd/VERSION
    rm -rf "$deb_dir"
  fi
fi
