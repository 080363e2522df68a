#!/usr/bin/env bash
# What can be proved about docker/ without a Docker engine (the development machines and CI have none):
#   1. docker/compose.yaml parses and has the fleet's services and key settings (scripts/check_docker.py compose);
#   2. promtool check config docker/prometheus.yml, check rules docker/alerts.yml, test rules docker/alerts.test.yml;
#   3. the Grafana dashboard's and the alerts' queries parse and name only toolgate's metrics, labels and values;
#   4. the Dockerfile's build context is complete: exactly what the build stage COPYs (less .dockerignore) goes into
#      an empty folder, where SwiftPM loads the package; then, unless --skip-build, the build stage's own
#      `swift build` runs there (release, static Swift runtime; several minutes on 2 cores) and every shared library
#      the built binaries load must come from a package the runtime stage installs.
# Usage: bash scripts/check-docker.sh [--skip-build] [--keep]   (--keep leaves the context folder for inspection)
# Exits non-zero with a message naming the file and the problem on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

skip_build=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --skip-build) skip_build=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "check-docker: unknown argument '$arg' (usage: bash scripts/check-docker.sh [--skip-build] [--keep])" >&2; exit 2 ;;
  esac
done

die() { echo "check-docker: FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
started=$(now)
timings=()
step() {  # step NAME COMMAND...: run it, print its time, stop on failure
  local name=$1 t0 t1 rc
  shift
  echo "check-docker: $name"
  t0=$(now)
  set +e
  "$@"
  rc=$?
  set -e
  t1=$(now)
  local took
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  timings+=("$(printf '%7ss  %s' "$took" "$name")")
  [ "$rc" -eq 0 ] || die "$name (exit code $rc, after ${took}s; see above)"
}

# A python3 with PyYAML: the e2e virtualenv (Tests/e2e/requirements.txt has it), or the system's (python3-yaml,
# which scripts/bootstrap.sh installs).
python=""
for candidate in "$PWD/.venv/bin/python" python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || die "no python3 with PyYAML: run bash scripts/bootstrap.sh (installs python3-yaml)"
command -v promtool >/dev/null || die "promtool is not installed: run bash scripts/bootstrap.sh (installs Debian's prometheus)"
command -v swift >/dev/null || die "swift is not on PATH: the build-context check needs SwiftPM"

step "compose.yaml: services and settings" "$python" scripts/check_docker.py compose
step "promtool check config docker/prometheus.yml" promtool check config docker/prometheus.yml
step "promtool check rules docker/alerts.yml" promtool check rules docker/alerts.yml
step "promtool test rules docker/alerts.test.yml" promtool test rules docker/alerts.test.yml
step "dashboard and alert queries" "$python" scripts/check_docker.py queries

context=$(mktemp -d "${TMPDIR:-/tmp}/toolgate-docker-context.XXXXXX")
cleanup() {
  if [ "$keep" -eq 1 ]; then
    echo "check-docker: build context kept in $context" >&2
  else
    rm -rf "$context"
    # SwiftPM's lock files for that folder, named after its path, in the temporary folder.
    rm -f "${TMPDIR:-/tmp}/$(printf '%s' "$context" | tr / _)_"*
  fi
}
trap cleanup EXIT
step "build context: the build stage's COPY lines into $context" "$python" scripts/check_docker.py context "$context"

if [ "$skip_build" -eq 1 ]; then
  echo "check-docker: --skip-build: the build stage's swift build and the runtime libraries were not checked"
else
  build=$("$python" scripts/check_docker.py build-command) || die "cannot read the build stage's swift build command"
  echo "check-docker: toolchain here: $(swift --version 2>&1 | head -n 1); the image builds with $(sed -n 's/^FROM \([^ ]*\) AS build.*/\1/p' docker/Dockerfile)"
  step "swift build in the copied context: $build" bash -c "cd '$context' && $build"
  step "runtime libraries cover what the binaries load" "$python" scripts/check_docker.py libraries "$context"
fi

total=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
echo "check-docker: all checks passed in ${total}s"
printf '%s\n' "${timings[@]}"
