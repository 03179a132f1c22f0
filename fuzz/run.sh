#!/usr/bin/env bash
# Runs the fuzz targets (all, or those named) for SECONDS each, with AddressSanitizer, libFuzzer's
# RSS limit of 2 GiB and a 10 s per-input timeout, and prints one line per target: executions,
# coverage, corpus size and the result. A crash, timeout or OOM stops with its reproducer under
# fuzz/artifacts/TARGET/ and exit status 1.
#
#   bash fuzz/run.sh 30                 # every target, 30 s each (the CI smoke run)
#   bash fuzz/run.sh 7200 gguf pth      # two targets, 2 hours each
#
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed here from crates.io when
# missing). Builds go to ~/.cache/llama31/fuzz-target (LLAMA31_FUZZ_TARGET_DIR); the working
# corpus grows in fuzz/corpus/TARGET (not committed), seeded from fuzz/seeds/TARGET (committed,
# small).
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-30}"
shift || true
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: SKIPPED: no nightly toolchain (cargo fuzz needs one; it cannot be installed from a package registry)"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
bash ../scripts/fetch-fixtures.sh >/dev/null
# Build outside the checkout so that later runs (and CI on the same machine) reuse the
# sanitized dependencies.
export CARGO_TARGET_DIR="${LLAMA31_FUZZ_TARGET_DIR:-${LLAMA31_CACHE:-$HOME/.cache/llama31}/fuzz-target}"
# FUZZ_SEED=N makes a run repeat the same inputs (the CI smoke run uses it); random otherwise.
SEED=()
if [ -n "${FUZZ_SEED:-}" ]; then SEED=(-seed="$FUZZ_SEED"); fi
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
echo "fuzz: building the targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build -O 2>&1 | grep -E '^(error|warning: unused)' -A5 || true
cargo +nightly fuzz build -O >/dev/null
failed=0
printf '%-18s %12s %9s %7s %7s  %s\n' target executions exec/s cov corpus result
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="$(mktemp)"
  rc=0
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${SEED[@]}" \
    >"$log" 2>&1 || rc=$?
  stat() { grep -o "^stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$' || echo '?'; }
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')"
  corpus="$(find "corpus/$t" -type f | wc -l)"
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc)"; failed=1; fi
  printf '%-18s %12s %9s %7s %7s  %s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$cov" "$corpus" "$result"
  if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
  fi
  rm -f "$log"
done
exit "$failed"
