#!/usr/bin/env bash
# Starts Space. The first start also creates the database, a demo site and the
# "admin" operator, whose generated password is printed that one time.
#   scripts/start.sh [--simulate[=N]] [--https[=HOST,...]] [runspace options, e.g. --port 8200]
# --simulate also runs N (default 20) simulated SDP/1 devices against the device
# bridge, so the demo has live door and access events.
# --https serves HTTPS: the first time, manage.py make_certificate makes a site CA
# and a server certificate under var/tls for HOST,... (default: localhost,
# 127.0.0.1, ::1 and this machine's name); import var/tls/ca.crt into the browser.
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
https_hosts=
args=()
for arg in "$@"; do
  case "$arg" in
    --simulate) simulate=20 ;;
    --simulate=*) simulate=${arg#--simulate=} ;;
    --https) https_hosts="localhost,127.0.0.1,::1$(hostname | grep -xE '[A-Za-z0-9.-]+' | sed 's/^/,/' || true)" ;;
    --https=*) https_hosts=${arg#--https=} ;;
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
if [ -n "$https_hosts" ]; then
  tls="$SPACE_VAR_DIR/tls"
  if [ ! -f "$tls/server.crt" ] || [ ! -f "$tls/server.key" ]; then
    IFS=, read -r -a hosts <<<"$https_hosts"
    $PY manage.py make_certificate "${hosts[@]}" --out "$tls"
    echo
  fi
  export SPACE_TLS_CERT_FILE="$tls/server.crt" SPACE_TLS_KEY_FILE="$tls/server.key"
  if [ -z "${SPACE_ALLOWED_HOSTS:-}" ]; then # answer to the names the certificate was asked for too
    SPACE_ALLOWED_HOSTS="127.0.0.1,localhost,[::1]"
    IFS=, read -r -a hosts <<<"$https_hosts"
    for name in "${hosts[@]}"; do
      case "$name" in *:*) SPACE_ALLOWED_HOSTS+=",[${name//[\[\]]/}]" ;; *) SPACE_ALLOWED_HOSTS+=",$name" ;; esac
    done
    export SPACE_ALLOWED_HOSTS
  fi
  # The address shown must be one the certificate names.
  case ",$https_hosts," in *",${shown_host//[\[\]]/},"*) ;; *) shown_host=${https_hosts%%,*} ;; esac
  url="https://$shown_host:$port"
  echo "HTTPS with the site CA $tls/ca.crt: import it into the browser (trusted root authorities) once."
fi
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
