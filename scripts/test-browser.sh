#!/usr/bin/env bash
# Runs tests/browser/test_chat_page.py: headless Chromium driven by Selenium against the chat page
# of a real `llama31 serve` with SmolLM2-135M-Instruct on loopback, behind an API key. Needs
# target/release/llama31 (cargo build --release) and the fixtures (scripts/fetch-fixtures.sh).
# Chromium and its driver are Debian's packages (installed with apt-get when missing, as root).
# SCREENSHOTS=DIR also saves screenshots of the page into DIR (docs/ holds the README's).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
PY="${PYTHON:-python3}"
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

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" >"$stamp"
fi

# Where cargo puts the binary: honours CARGO_TARGET_DIR and a target-dir in cargo's config.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/release/llama31"
[ -x "$BIN" ] || cargo build --release --bin llama31
LOG="$(mktemp)"
KEY="browser-test-key"
# --dequantize: the f32 path gives SmolLM2's sensible replies (the screenshots show them).
"$BIN" serve --model "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" --port 0 --parallel 2 --ctx 2048 \
  --api-key "$KEY" --alias smollm2 --dequantize 2>"$LOG" &
PID=$!
# On any failure the server's own log is shown: it says why a load failed or what it answered.
finish() {
  local rc=$?
  kill $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "--- llama31 serve log ---" >&2
    cat "$LOG" >&2
  fi
  rm -f "$LOG"
  exit "$rc"
}
trap finish EXIT
for _ in $(seq 1 300); do
  URL="$(grep -o 'http://[0-9.:]*' "$LOG" | head -1 || true)"
  [ -n "$URL" ] && break
  kill -0 $PID 2>/dev/null || { echo "server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "server did not start" >&2; exit 1; }
"$VENV/bin/python" tests/browser/test_chat_page.py "$URL" "$KEY"
