#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: fetches the registry fixtures, sets up the Python
# environment that regenerates the tiny test models, then builds and tests every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-fixtures.sh
bash scripts/setup-python.sh --tiny

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release "$@"
# The kernels again with debug assertions (the test profile): every pointer range a SIMD kernel reads
# or writes is checked against its slice (crates/kernels/src/checked.rs).
cargo test -p llama31-kernels

# The official `openai` Python client against a real `llama31 serve`.
bash scripts/test-openai.sh

# The chat page in headless Chromium (Debian's packages, installed when missing) with Selenium.
bash scripts/test-browser.sh

# Every fuzz target for 30 s under AddressSanitizer, the same inputs each time (the smoke run;
# fuzz/run.sh SECONDS for more).
FUZZ_SEED=1 bash fuzz/run.sh 30
