#!/usr/bin/env bash
# The main job: install what is needed, build, check the kernels against the oracle, then
# train three twins (full attention, sliding window, mixed windows with gated fusion) on
# the Python standard library's sources and compare them on one table, stream a sample,
# and write results/ (scripts/compare_windows.py; its options pass through, e.g. --data).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=Release -DSWA_BUILD_TESTS=OFF
"$root/build/swa" check
# Debian's interpreter: its matplotlib draws the plots, its standard library is the text.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
"$python" "$root/scripts/compare_windows.py" --swa "$root/build/swa" --out "$root/results" "$@"
