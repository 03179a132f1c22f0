#!/usr/bin/env bash
# Encode throughput: our tokenizer (tokenizer.model and tokenizer.json loaders) vs Python tiktoken
# on the same text (all MMLU questions + choices concatenated, ~5 MB), single thread each.
# Usage: bench/tokenizer/run.sh [ITERS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
ITERS="${1:-5}"
TEXT="${TMPDIR:-/tmp}/llama31-bench-mmlu.txt"

PY=""
for v in "$CACHE/venv-goldens" "$CACHE/venv-bench"; do
  if [ -x "$v/bin/python" ] && "$v/bin/python" -c "import tiktoken" 2>/dev/null; then PY="$v/bin/python"; break; fi
done
if [ -z "$PY" ]; then
  python3 -m venv "$CACHE/venv-bench"
  "$CACHE/venv-bench/bin/pip" install -q tiktoken
  PY="$CACHE/venv-bench/bin/python"
fi

"$PY" - "$CACHE/mmlu.jsonl" "$TEXT" <<'PYEOF'
import json, sys
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    out.append(r["question"])
    out.extend(r[k] for k in ("answer_a", "answer_b", "answer_c", "answer_d"))
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(out))
PYEOF

cd "$ROOT"
cargo build -q --release -p llama31-tokenizer --example tokenizer_bench
BIN="$ROOT/target/release/examples/tokenizer_bench"
R1="$("$BIN" "$CACHE/tokenizer.model" "$TEXT" "$ITERS")"
R2="$("$BIN" "$CACHE/tokenizer.json" "$TEXT" "$ITERS")"
P="$("$PY" "$ROOT/bench/tokenizer/bench_tiktoken.py" "$CACHE/tokenizer.model" "$TEXT" "$ITERS")"
echo "$R1"; echo "$R2"; echo "$P"
mbs() { sed -E 's/.*MB\/s=([0-9.]+).*/\1/'; }
RUST=$(echo "$R1" | mbs)
TIK=$(echo "$P" | head -1 | mbs)
echo "ratio rust(tokenizer.model) / python tiktoken = $(awk -v a="$RUST" -v b="$TIK" 'BEGIN{printf "%.2f", a/b}')x"
