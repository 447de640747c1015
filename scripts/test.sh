#!/usr/bin/env bash
# The tests: install what is needed (Debian packages, then the Python packages into
# .venv), build, run every test; install the Python package swa into .venv and test it;
# build again with AddressSanitizer + UndefinedBehaviorSanitizer and run every test under
# them (the Python checks with the sanitizer runtime preloaded); build the threaded tests
# with ThreadSanitizer and run them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
start=$SECONDS
"$root/scripts/install-deps.sh"
"$root/scripts/python-env.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=Release -DSWA_BUILD_TESTS=ON
(cd "$root/build" && ctest --output-on-failure -j "$jobs")
echo "== release build and tests: $((SECONDS - start)) s"
# The Python package: pip builds libswa.so into it (pyproject.toml; build tree build-py/,
# no build isolation, so nothing is fetched beyond python/requirements-dev.txt's pins),
# installs it into .venv, and the tests run against the installed copy.
CMAKE_BUILD_PARALLEL_LEVEL="$jobs" "$root/.venv/bin/python" -m pip install --disable-pip-version-check \
  --no-input -q --no-build-isolation "$root"
(cd "$root" && .venv/bin/python -m pytest -q tests/python/test_package.py tests/python/test_package_ops.py \
  tests/python/test_hf_backend.py tests/python/test_nn.py tests/python/test_hf_interop.py \
  tests/python/test_readme_examples.py)
echo "== + Python package: $((SECONDS - start)) s"
"$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWA_SANITIZE=address
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$jobs")
echo "== + address/undefined sanitizers: $((SECONDS - start)) s"
# The code that runs on several threads: the thread pool under every kernel, the
# backward's ordered dQ commits, the decode path's split-KV merge, batched cache streams.
threaded=(forward_test backward_test ordered_commits_test cache_stream_test cache_batch_test)
cmake -S "$root" -B "$root/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWA_SANITIZE=thread >/dev/null
cmake --build "$root/build-tsan" -j "$jobs" --target "${threaded[@]}"
# On the best SIMD target only: the threading does not depend on the target.
(cd "$root/build-tsan" && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --output-on-failure -j "$jobs" -E 'SCALAR|EMU128' \
  -R '^(Targets/(Forward|Backward)Test\.ResultsDoNotDependOnThreadCount|OrderedCommitsTest|CacheStreamTest|CacheBatchTest)')
echo "== + thread sanitizer: $((SECONDS - start)) s"
