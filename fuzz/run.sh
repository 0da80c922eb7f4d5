#!/usr/bin/env bash
# Runs one fuzz target for a bounded time: fuzz/run.sh TARGET SECONDS.
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 enables them on the stable
# toolchain (the only one this project uses). Exits non-zero if the fuzzer finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
seconds="${2:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${PIPEWRIGHT_FUZZ_TARGET_DIR:-$HOME/.cache/pipewright-fuzz-target}"
mkdir -p "corpus/$target"
cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
