#!/usr/bin/env bash
# Runs every fuzz target for a short time (FUZZ_SECONDS each, default 15) from its seed corpus
# (fuzz/seeds/TARGET) and its local corpus (fuzz/corpus/TARGET, not in git). Needs the nightly
# toolchain; installs cargo-fuzz from crates.io when it is missing (about 30 s) unless
# FUZZ_SKIP_INSTALL=1. Without nightly (or cargo-fuzz, when not installing) it prints why it
# skips and succeeds. A crash fails the run; its input is in fuzz/artifacts/TARGET/.
# docs/fuzzing.md describes the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}
targets=(frame_codec content_assembly storage_recovery definitions management_json connection_state)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain or cargo-fuzz)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  if [ "${FUZZ_SKIP_INSTALL:-0}" = 1 ]; then
    echo "fuzz: skipped (no nightly toolchain or cargo-fuzz)"
    exit 0
  fi
  cargo +stable install cargo-fuzz --locked
fi
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)|panicked|ERROR|SUMMARY'
done
