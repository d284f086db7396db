#!/usr/bin/env bash
# One bounded libFuzzer run (tests/fuzz/meson.build): run_one.sh BINARY SECONDS SEED_CORPUS WORK_DIR.
# The seed corpus is copied into WORK_DIR/corpus (libFuzzer adds what it finds there); a crash
# writes WORK_DIR/crash-* and exits non-zero, which fails the meson test.
set -euo pipefail
binary=$1 seconds=$2 seeds=$3 work=$4
mkdir -p "$work/corpus"
cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
# libFuzzer exits 77 on a crash by default, which meson would count as a skip: use 1.
exec "$binary" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus"
