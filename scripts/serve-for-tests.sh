# Sourced by the end-to-end test scripts. `ensure_venv VENV REQUIREMENTS` makes the virtual
# environment and installs the requirements file into it when the file changed (PYTHON picks the
# interpreter). `start_server ARGS...` starts `llama31 serve ARGS...`
# (the release binary, wherever cargo puts it; built when missing) on a free loopback port, waits
# until it listens and sets URL and PID. On exit the server is stopped, and on a failure its own
# log is shown: it says why a load failed or what it answered.

ensure_venv() {
  local venv="$1" req="$2"
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
  fi
}

start_server() {
  # Where cargo puts the binary: honours CARGO_TARGET_DIR and a target-dir in cargo's config.
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  local bin="$target_dir/release/llama31"
  [ -x "$bin" ] || cargo build --release --bin llama31
  SERVER_LOG="$(mktemp)"
  "$bin" serve --port 0 "$@" 2>"$SERVER_LOG" &
  PID=$!
  trap stop_server EXIT
  URL=""
  for _ in $(seq 1 300); do
    URL="$(grep -o 'http://[0-9.:]*' "$SERVER_LOG" | head -1 || true)"
    [ -n "$URL" ] && break
    kill -0 "$PID" 2>/dev/null || { echo "server exited" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$URL" ] || { echo "server did not start" >&2; exit 1; }
}

stop_server() {
  local rc=$?
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "--- llama31 serve log ---" >&2
    cat "$SERVER_LOG" >&2
  fi
  rm -f "$SERVER_LOG"
  exit "$rc"
}
