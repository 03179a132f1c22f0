#!/usr/bin/env bash
# Runs crates' tests under AddressSanitizer (nightly `-Zsanitizer=address`; the standard library
# itself is not instrumented): every out-of-bounds read or write, use after free or double free in
# our code, the SIMD kernels' raw-pointer paths included, stops the test with a report.
#
#   bash scripts/sanitizers.sh                       # kernels, formats, tokenizer, chat, grammar
#   bash scripts/sanitizers.sh -p llama31-model      # other crates (any `cargo test` arguments)
#
# Builds go to ~/.cache/llama31/asan-target. Needs the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "sanitizers: no nightly toolchain (rustup); -Zsanitizer needs one" >&2
  exit 1
fi
bash scripts/fetch-fixtures.sh >/dev/null
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then
  ARGS=(-p llama31-kernels -p llama31-formats -p llama31-tokenizer -p llama31-chat -p llama31-grammar)
fi
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export CARGO_TARGET_DIR="${LLAMA31_ASAN_TARGET_DIR:-${LLAMA31_CACHE:-$HOME/.cache/llama31}/asan-target}"
# --target: keeps the sanitizer flags off build scripts and proc macros.
exec cargo +nightly test --release --no-fail-fast --target x86_64-unknown-linux-gnu "${ARGS[@]}"
