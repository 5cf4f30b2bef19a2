#!/usr/bin/env bash
# The whole test suite: lint, the cross-package tests in the uv workspace, then the per-package
# matrix (each distribution built and tested alone in a fresh venv, see ci/test-package.sh).
# Ends with one line "total: N passed, N failed, N skipped" summed over every pytest run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
results="$(mktemp -d "${TMPDIR:-/tmp}/ci-results.XXXXXX")"
trap 'rm -rf "$results"' EXIT
status=0

echo "== workspace: uv sync (locked) =="
uv sync --all-packages --locked -q

echo "== lint: ruff =="
uv run --no-sync ruff check . || status=1

echo "== cross-package tests (tests/) =="
uv run --no-sync pytest -p no:cacheprovider --junitxml "$results/workspace.xml" tests || status=1

for name in $(python3 ci/packages.py); do
  echo "== package matrix: $name =="
  bash ci/test-package.sh "$name" "$results" || { echo "[$name] FAILED"; status=1; }
done

python3 ci/summarize.py "$results"/*.xml || status=1
exit $status
