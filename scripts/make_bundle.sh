#!/usr/bin/env bash
# Builds a self-contained bundle of the test binaries and the `swa` command (static
# libstdc++, with libhwy beside them) to run the suite on another x86-64 Linux machine,
# e.g. one with AVX-512 to exercise the kernels' AVX-512 target:
#   scripts/make_bundle.sh bundle && (cd bundle && ./run_all.sh /tmp/results)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-bundle}")"
"$root/scripts/build.sh" "$root/build-bundle" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" -DCMAKE_SHARED_LINKER_FLAGS="-static-libstdc++ -static-libgcc"
rm -rf "$out"
mkdir -p "$out/tests"
for t in "$root"/build-bundle/tests/*_test; do cp "$t" "$out/tests/"; done
cp "$root/build-bundle/swa" "$out/"
cp -L /usr/lib/x86_64-linux-gnu/libhwy.so.1 "$out/"
strip "$out"/tests/* "$out/swa"
cat > "$out/run_all.sh" <<'RUN'
#!/usr/bin/env bash
# Runs every test binary (in parallel), `swa check` and `swa bench`; logs go to $1.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
logs="${1:-logs}"
mkdir -p "$logs"
export LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
(lscpu; echo; grep -m1 flags /proc/cpuinfo) > "$logs/cpu.txt" 2>&1
ls "$here"/tests/*_test | xargs -P "$(nproc)" -I{} sh -c '{} --gtest_brief=1 > "$0/$(basename {}).log" 2>&1; echo "$? $(basename {})"' "$logs" | sort > "$logs/summary.txt"
"$here/swa" check > "$logs/check.txt" 2>&1; echo "check rc=$?" >> "$logs/summary.txt"
cat "$logs/summary.txt"
RUN
chmod +x "$out/run_all.sh"
du -sh "$out"
