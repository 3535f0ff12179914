#!/usr/bin/env bash
# The whole test suite: lint, the layers contract, Django checks, then pytest on SQLite and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh --test
scripts/services.sh

PY=.venv/bin/python
# The same Hypothesis examples every run (tests/conftest.py).
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
export SPACE_VAR_DIR=${SPACE_VAR_DIR:-$(mktemp -d /tmp/space-test-XXXXXX)}

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== lint-imports (the layers contract in pyproject.toml)"
.venv/bin/lint-imports

echo "== manage.py check / makemigrations --check"
$PY manage.py check
$PY manage.py makemigrations --check --dry-run

echo "== pytest on SQLite"
$PY -m pytest -n 2 -q "$@"

echo "== pytest on PostgreSQL"
# The browser tests start servers on SQLite files of their own whatever DATABASE_URL says: once is enough.
# Tests that never touch the database ran on SQLite already (tests/conftest.py): only the others run again.
SPACE_TEST_DATABASE_ONLY=1 DATABASE_URL=${SPACE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} \
    $PY -m pytest -n 2 -q -m "not browser" "$@"
