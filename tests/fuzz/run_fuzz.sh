#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with Debian's clang (address + undefined sanitizers)
# and runs each for a bounded time: run_fuzz.sh [SECONDS per target, default 60] [BUILD_DIR].
# A crash, sanitizer report or unexpected exception stops the run with the reproducer written
# to BUILD_DIR (crash-*); exit status non-zero. docs/robustness.md has the recorded runs.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${2:-$root/build-fuzz}
mkdir -p "$out"
cxx=${CXX_FUZZ:-clang++}
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/include" -I"$root/lib" $(pkg-config --cflags eigen3))
# Only the library sources a target needs: the parser and the .npy reader are self-contained.
core=("$root/lib/core/architecture.cpp" "$root/lib/core/activation.cpp" "$root/lib/core/inputs.cpp"
      "$root/lib/core/image_geometry.cpp")
"$cxx" "${flags[@]}" "$root/tests/fuzz/fuzz_spec.cpp" "${core[@]}" -o "$out/fuzz_spec"
"$cxx" "${flags[@]}" "$root/tests/fuzz/fuzz_npy.cpp" "$root/lib/data/npy.cpp" "${core[@]}" -o "$out/fuzz_npy"
for target in spec npy; do
  corpus="$out/corpus_$target"
  mkdir -p "$corpus"
  cp -n "$root/tests/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null || true
  (cd "$out" && ./fuzz_$target -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 "$corpus")
done
