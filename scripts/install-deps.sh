#!/usr/bin/env bash
# Installs the Debian packages swa needs to build, test and benchmark (idempotent).
set -euo pipefail
packages=(build-essential cmake ninja-build googletest libgtest-dev libcli11-dev nlohmann-json3-dev
          libhwy-dev libopenblas-dev libcpp-httplib-dev pkg-config python3 python3-numpy python3-matplotlib
          chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
