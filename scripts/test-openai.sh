#!/usr/bin/env bash
# Runs tests/openai/test_openai.py (the official `openai` package) against a real
# `llama31 serve` with SmolLM2-135M-Instruct on loopback. Needs target/release/llama31
# (cargo build --release) and the fixtures (scripts/fetch-fixtures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
VENV="$CACHE/venv-openai"
REQ="scripts/requirements-openai.txt"
. scripts/serve-for-tests.sh
ensure_venv "$VENV" "$REQ"
# --dequantize: the f32 path answers the test's questions the way the assertions expect (with
# llama.cpp's Q4_1 arithmetic, the default, SmolLM2 does not name Paris).
start_server --model "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" --parallel 4 --ctx 2048 \
  --api-key test-key --alias smollm2 --dequantize
"$VENV/bin/python" tests/openai/test_openai.py "$URL" test-key "$PID"
