#!/usr/bin/env bash
# End-to-end tests: the official MCP Python SDK drives the real toolgate binary.
#   bash Tests/e2e/run.sh [pytest args...]                      the debug build's toolgate (built if missing)
#   TOOLGATE_BIN=/abs/path/to/toolgate bash Tests/e2e/run.sh ...  another binary (a release build, say)
# Creates (or reuses) the virtualenv at .venv in the repository root and installs requirements.txt into it.
# Exits non-zero on any failure, and also when no test ran.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"

if [ -z "${TOOLGATE_BIN:-}" ]; then
  # The debug build scripts/test.sh and scripts/demo.sh use; an existing binary is used as it is (rebuild with
  # `swift build` after changing the sources).
  bin_dir="$(cd "$root" && swift build --show-bin-path)"
  TOOLGATE_BIN="$bin_dir/toolgate"
  if [ ! -x "$TOOLGATE_BIN" ]; then
    echo "e2e: $TOOLGATE_BIN is missing; building it (swift build --product toolgate)" >&2
    (cd "$root" && swift build --product toolgate) >&2
  fi
  echo "e2e: TOOLGATE_BIN=$TOOLGATE_BIN" >&2
  export TOOLGATE_BIN
fi
case "$TOOLGATE_BIN" in
  /*) ;;
  *) echo "e2e: TOOLGATE_BIN must be an absolute path, got '$TOOLGATE_BIN'" >&2; exit 2 ;;
esac
if [ ! -x "$TOOLGATE_BIN" ]; then
  echo "e2e: warning: $TOOLGATE_BIN is not an executable file; every test that needs toolgate will fail" >&2
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "e2e: creating $venv" >&2
  python3 -m venv "$venv"
fi
stamp="$venv/.e2e-requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "e2e: installing $here/requirements.txt" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

cd "$here"
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the work tree
set +e
# No arguments: pytest collects the current directory ($here). With arguments, only what they name runs.
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "e2e: no test ran (pytest exit code 5): treated as a failure" >&2
  exit 1
fi
exit "$rc"
