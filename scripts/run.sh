#!/usr/bin/env bash
# The main job: install what is needed, build, check the fast path against the oracle,
# and benchmark it against this machine's own peak.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=Release
"$root/build/swa" check
"$root/build/swa" bench "$@"
