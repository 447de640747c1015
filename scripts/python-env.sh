#!/usr/bin/env bash
# Creates or updates the repository's virtual environment .venv from
# python/requirements-dev.txt with Debian's /usr/bin/python3 (idempotent).
# A stamp file inside .venv holds the hash of the requirements file; when it matches,
# pip is not run at all, so a second call returns at once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
requirements="$root/python/requirements-dev.txt"
stamp="$venv/requirements.sha256"
python=/usr/bin/python3

# Debian splits venv and pip out of python3; a fresh machine may lack all three.
missing=()
for p in python3 python3-venv python3-pip; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "python-env: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi

wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null \
    && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "python-env: $venv is up to date with python/requirements-dev.txt"
  exit 0
fi

# A venv whose interpreter no longer runs (Debian upgraded python3) is rebuilt whole.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "python-env: $venv is broken; recreating it"
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "python-env: creating $venv with $python ($("$python" --version 2>&1))"
  "$python" -m venv "$venv"
fi

echo "python-env: installing python/requirements-dev.txt into $venv (torch brings ~5 GB of CUDA libraries)"
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
echo "$wanted" >"$stamp"
echo "python-env: done"
