#!/usr/bin/env bash
# Starts the local PostgreSQL and Redis the test suite uses, if they are down.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do listening 5432 && break; sleep 1; done
fi
listening 5432 || { echo "PostgreSQL is not running on 127.0.0.1:5432" >&2; exit 1; }

if command -v redis-server >/dev/null && ! listening 6379; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  sleep 1
fi
exit 0
