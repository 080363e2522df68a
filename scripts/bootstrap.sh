#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine (with the Swift toolchain) lacks to build and test toolgate.
# Idempotent: installs nothing when everything is already there.
set -euo pipefail

# prometheus: promtool and the server (scripts/check-docker.sh, test_docker_and_prometheus.py); python3-yaml for
# scripts/check_docker.py outside the e2e virtualenv.
packages=(libhiredis-dev libssl-dev libcurl4-openssl-dev libpcre2-dev redis-server redis-tools python3-venv pkg-config faketime chromium chromium-driver
  prometheus python3-yaml)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "bootstrap: swift is not on PATH (expected the Swift 6.2+ toolchain)" >&2; exit 1; }
