#!/usr/bin/env bash
# Prefill (pp) and decode (tg) throughput of `llama31 bench` and llama.cpp on the same GGUF, same
# threads, in the same run; prints both and the ratios.
# Needs llama-cpp-python 0.3.36 built from source: scripts/goldens/setup-venv-goldens.sh (~30 min once).
# usage: bench/llama_cpp/run.sh [MODEL.gguf] [P] [N] [THREADS] [REPS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
MODEL="${1:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf}"
P="${2:-512}"; N="${3:-128}"; T="${4:-$(nproc)}"; R="${5:-3}"
PY="$CACHE/venv-goldens/bin/python"
[ -x "$PY" ] || { echo "missing $PY: run scripts/goldens/setup-venv-goldens.sh" >&2; exit 2; }
(cd "$ROOT" && cargo build --release --quiet --bin llama31)
ours=$("$ROOT/target/release/llama31" bench --model "$MODEL" -p "$P" -n "$N" -t "$T" -r "$R" --json 2>/dev/null | tail -n1)
theirs=$("$PY" "$ROOT/bench/llama_cpp/llama_bench.py" "$MODEL" "$P" "$N" "$T" "$R" 2>/dev/null | tail -n1)
python3 - "$MODEL" "$P" "$N" "$T" "$ours" "$theirs" <<'PY'
import json, os, sys
model, p, n, t, ours, theirs = sys.argv[1:7]
o, l = json.loads(ours), json.loads(theirs)
print(f"model {os.path.basename(model)}, {t} threads")
print(f"{'test':8} {'llama31':>10} {'llama.cpp':>10} {'ratio':>7}")
for k, name in (("pp", f"pp{p}"), ("tg", f"tg{n}")):
    print(f"{name:8} {o[k]:10.1f} {l[k]:10.1f} {o[k] / l[k]:7.2f}")
PY
