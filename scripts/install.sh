#!/usr/bin/env bash
# Installs what Space needs on Debian 12, idempotently: system packages, then a
# virtual environment in .venv with the pinned Python packages.
#   scripts/install.sh          runtime only
#   scripts/install.sh --test   runtime + test tools (and Debian's Chromium with fonts for the browser tests)
# The LDAP extra (requirements-ldap.txt) is always installed: python-ldap builds
# against libldap and libsasl, and the tests start Debian's slapd on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql-client: pg_dump and pg_restore, for backups of a PostgreSQL site (docs/backups.md).
# mosquitto: the site's MQTT broker for face terminals (docs/face-terminals.md), configured by Space;
# mosquitto-clients: mosquitto_pub, to try a terminal's certificate by hand (and a terminal in the tests).
SYSTEM_PACKAGES=(python3 python3-venv python3-dev gcc libpq5 postgresql-client tzdata ca-certificates
  libldap2-dev libsasl2-dev slapd ldap-utils mosquitto mosquitto-clients)
# The browser tests drive Debian's Chromium through Playwright (never a browser Playwright downloads);
# real fonts so that pages and screenshots render as an operator sees them. The HR feed tests start
# OpenSSH's sshd on a free port as the SFTP server a feed is fetched from.
if [ "${1:-}" = "--test" ]; then SYSTEM_PACKAGES+=(chromium fonts-dejavu-core fonts-liberation2 openssh-server); fi

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  # Only slapd's, sshd's and Mosquitto's binaries are wanted (the tests run their own on free ports): keep the
  # packages' services from starting while they install, unless the machine already has a policy of its own.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$policy" ]; then $SUDO rm -f "$policy"; trap - EXIT; fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

requirements=requirements.txt
[ "${1:-}" = "--test" ] && requirements=requirements-test.txt
# Skip pip entirely when the requirements have not changed since the last install.
stamp=.venv/.installed-$(sha256sum requirements*.txt | sha256sum | cut -c1-16)-$(basename "$requirements" .txt)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements" -r requirements-ldap.txt
  touch "$stamp"
fi
