#!/usr/bin/env bash
# Starts Space. The first start also creates the database, a demo site and the
# "admin" operator, whose generated password is printed that one time.
#   scripts/start.sh [--simulate[=N]] [runspace options, e.g. --port 8200]
# --simulate also runs N (default 20) simulated SDP/1 devices against the device
# bridge, so the demo has live door and access events.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh

PY=.venv/bin/python
# var/ holds the database and the secret key: readable by this user only.
umask 077
export SPACE_VAR_DIR=${SPACE_VAR_DIR:-$PWD/var}
mkdir -p "$SPACE_VAR_DIR"
marker="$SPACE_VAR_DIR/first-start-done"

host=${SPACE_HTTP_HOST:-127.0.0.1}
port=${SPACE_HTTP_PORT:-8100}
# --simulate is this script's; the rest goes to runspace. --host/--port are read for the message below.
simulate=0
args=()
for arg in "$@"; do
  case "$arg" in
    --simulate) simulate=20 ;;
    --simulate=*) simulate=${arg#--simulate=} ;;
    *) args+=("$arg") ;;
  esac
done
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --host) host=${args[$((i + 1))]:-$host} ;;
    --host=*) host=${args[$i]#--host=} ;;
    --port) port=${args[$((i + 1))]:-$port} ;;
    --port=*) port=${args[$i]#--port=} ;;
  esac
done
case "$host" in 0.0.0.0 | "::" | "[::]") shown_host=127.0.0.1 ;; *:*) shown_host="[$host]" ;; *) shown_host=$host ;; esac
url="http://$shown_host:$port"
reset_hint="to reset it: $PY manage.py create_admin --reset"

if [ ! -f "$marker" ]; then
  echo "First start: preparing the database and a demo site."
  $PY manage.py migrate --no-input -v 0
  $PY manage.py seed_demo
  password=$($PY manage.py create_admin --if-missing --password-only)
  touch "$marker"
  echo
  if [ -n "$password" ]; then
    echo "Space is running at $url — log in as admin / $password"
    echo "(The password is shown only this once; $reset_hint)"
  else
    echo "Space is running at $url — log in as admin (the operator existed already; $reset_hint)"
  fi
else
  echo "Space is running at $url — log in as admin (password shown at first start; $reset_hint)"
fi
echo

if [ "$simulate" -gt 0 ] 2>/dev/null; then
  echo "Simulating $simulate devices against the device bridge (udp port ${SPACE_DEVICE_PORT:-7100})."
  # The devices retry their handshake until the bridge inside runspace listens.
  $PY manage.py simulate_devices --count "$simulate" --rate "$simulate" \
    --server "127.0.0.1:${SPACE_DEVICE_PORT:-7100}" >"$SPACE_VAR_DIR/simulator.log" 2>&1 &
  simulator=$!
  trap 'kill $simulator 2>/dev/null' EXIT INT TERM
  $PY manage.py runspace "${args[@]}"
else
  exec $PY manage.py runspace "${args[@]}"
fi
