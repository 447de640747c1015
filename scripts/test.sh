#!/usr/bin/env bash
# The tests: install what is needed (Debian packages, then the Python packages into .venv),
# build, run every test; then build again with AddressSanitizer +
# UndefinedBehaviorSanitizer and run every test under them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
"$root/scripts/install-deps.sh"
"$root/scripts/python-env.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=Release
(cd "$root/build" && ctest --output-on-failure -j "$jobs")
"$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWA_SANITIZE=ON
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$jobs")
