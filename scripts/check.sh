#!/usr/bin/env bash
# Install the dev dependencies, then run every test and linter. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[dev]'   # builds the Rust extension (release profile)

echo "== ruff"; ruff check python tests benches; ruff format --check python tests benches
echo "== mypy"; mypy
echo "== cargo fmt"; cargo fmt --check
echo "== clippy"; cargo clippy --all-targets -- -D warnings
echo "== cargo test"; cargo test
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }  # limits tests
# key store tests run a real PostgreSQL (tests/support/postgres.py); Debian puts initdb off PATH
command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq postgresql; }
echo "== pytest"; python -m pytest -p no:cacheprovider "$@"
