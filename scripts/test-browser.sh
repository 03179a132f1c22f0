#!/usr/bin/env bash
# Runs tests/browser/test_chat_page.py: headless Chromium driven by Selenium against the chat page
# of a real `llama31 serve` with SmolLM2-135M-Instruct on loopback, behind an API key. Needs
# target/release/llama31 (cargo build --release) and the fixtures (scripts/fetch-fixtures.sh).
# Chromium and its driver are Debian's packages (installed with apt-get when missing, as root).
# SCREENSHOTS=DIR also saves screenshots of the page into DIR (docs/ holds the README's).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
VENV="$CACHE/venv-browser"
REQ="scripts/requirements-browser.txt"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium chromium-driver >/dev/null
  else
    echo "Chromium is missing: install Debian's chromium and chromium-driver packages" \
      "(or set CHROMIUM and CHROMEDRIVER)" >&2
    exit 1
  fi
fi

. scripts/serve-for-tests.sh
ensure_venv "$VENV" "$REQ"
KEY="browser-test-key"
# --dequantize: the f32 path gives SmolLM2's sensible replies (the screenshots show them).
start_server --model "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" --parallel 2 --ctx 2048 \
  --api-key "$KEY" --alias smollm2 --dequantize
"$VENV/bin/python" tests/browser/test_chat_page.py "$URL" "$KEY"
