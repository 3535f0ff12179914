#!/usr/bin/env bash
# Installs what Space needs on Debian 12, idempotently: system packages, then a
# virtual environment in .venv with the pinned Python packages.
#   scripts/install.sh          runtime only
#   scripts/install.sh --test   runtime + test tools (and Debian's Chromium with fonts for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(python3 python3-venv python3-dev gcc libpq5 tzdata ca-certificates)
# The browser tests drive Debian's Chromium through Playwright (never a browser Playwright downloads);
# real fonts so that pages and screenshots render as an operator sees them.
[ "${1:-}" = "--test" ] && SYSTEM_PACKAGES+=(chromium fonts-dejavu-core fonts-liberation2)

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
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
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
