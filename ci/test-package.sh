#!/usr/bin/env bash
# Test ONE distribution as a user would get it: build its wheel and medshared's wheel with
# `uv build --no-sources`, install just those two (plus the package's `test` extra) into a fresh
# virtual environment outside the workspace, then run the package's tests, `--help` and
# `--version` there. Proves that `pip install <tool>` alone works and that the dependency lists
# are complete.
#
# Usage: bash ci/test-package.sh NAME [RESULTS_DIR]
set -euo pipefail
name="${1:?usage: ci/test-package.sh NAME [RESULTS_DIR]}"
results="${2:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

folder="$(python3 ci/packages.py --paths | awk -F'\t' -v n="$name" '$1 == n {print $2}')"
if [ -z "$folder" ]; then
  echo "error: no distribution named '$name' (have: $(python3 ci/packages.py | tr '\n' ' '))" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ci-$name.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "::group::[$name] build wheels"
uv build -q --no-sources --wheel --package medshared -o "$work/dist"
if [ "$name" != "medshared" ]; then
  uv build -q --no-sources --wheel --package "$name" -o "$work/dist"
fi
ls "$work/dist"
echo "::endgroup::"

echo "::group::[$name] fresh venv install"
uv venv -q --python "${CI_PYTHON:-3.11}" "$work/venv"   # CI_PYTHON overrides the interpreter
py="$work/venv/bin/python"
shared_whl="$(ls "$work/dist"/medshared-*.whl)"
if [ "$name" = "medshared" ]; then
  uv pip install -q --python "$py" "${shared_whl}[test]"
else
  pkg_whl="$(ls "$work/dist/${name//-/_}"-*.whl)"
  uv pip install -q --python "$py" "$shared_whl" "${pkg_whl}[test]"
fi
echo "::endgroup::"

echo "::group::[$name] tests"
junit=()
if [ -n "$results" ]; then
  mkdir -p "$results"
  junit=(--junitxml "$results/$name.xml")
fi
# Run from an empty folder so the source tree cannot shadow the installed wheel; the root
# pyproject still provides the pytest configuration (markers, -m 'not slow', importlib mode).
(cd "$work" && "$py" -m pytest -c "$root/pyproject.toml" --rootdir "$root" -p no:cacheprovider \
  "${junit[@]}" "$root/$folder/tests")
echo "::endgroup::"

echo "::group::[$name] console script"
"$work/venv/bin/$name" --help >/dev/null
"$work/venv/bin/$name" --version
echo "::endgroup::"
echo "[$name] OK"
