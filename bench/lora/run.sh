#!/usr/bin/env bash
# LoRA adapters: decode and prompt speed with one rank-16 adapter on all seven projections,
# unmerged (--lora), merged at load (--merge-lora: f32 adapted projections; --merge-lora=stored:
# rounded back to the base's types) and merged into a file of the base's own type (quantize --lora),
# against the base, in one run (runs alternate, medians);
# then 8 concurrent streams over 4 adapters against 8 on the base (bench/lora/serve.py).
# Files: SmolLM2-135M-Instruct Q4_1 (fixtures; merged file from its F32 GGUF) and the 1B benchmark
# file of bench/llama_cpp in Q4_K_M (merged file from its F16 GGUF). Adapters: random, from
# bench/lora/make_adapter.py (timing does not depend on the values).
# usage: bench/lora/run.sh [ROUNDS]   (LLAMA31_NO_SERVE=1 skips the server part)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
ROUNDS="${1:-3}"
WORK="${TMPDIR:-/tmp}/llama31-bench-lora"; mkdir -p "$WORK"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --quiet -p llama31-cli)
BIN="$TARGET/release/llama31"
PY="$CACHE/venv/bin/python"
CASES=(
  "smollm2 $CACHE/SmolLM2-135M-Instruct.Q4_1.gguf $CACHE/SmolLM2-135M-Instruct.F32.gguf Q4_1"
  "1b-q4km $CACHE/bench-1b-Q4_K_M.llama31.gguf $CACHE/bench-1b-f16.gguf Q4_K_M"
)
for C in "${CASES[@]}"; do
  read -r N MODEL FLOAT TYPE <<< "$C"
  [ -f "$MODEL" ] && [ -f "$FLOAT" ] || { echo "missing $MODEL or $FLOAT" >&2; continue; }
  AD="$WORK/$N-r16"
  [ -f "$AD/adapter_config.json" ] || "$PY" "$ROOT/bench/lora/make_adapter.py" "$MODEL" "$AD" --rank 16
  MERGED="$WORK/$N-merged.gguf"
  [ -f "$MERGED" ] || "$BIN" quantize "$FLOAT" "$MERGED" --type "$TYPE" --lora "$AD" 2>/dev/null
  echo "== $N ($(basename "$MODEL")), rank-16 adapter on q/k/v/o/gate/up/down, $ROUNDS rounds"
  : > "$WORK/$N.jsonl"
  for _ in $(seq "$ROUNDS"); do
    for V in base unmerged merge-lora merge-stored merged-file; do
      case "$V" in
        base) ARGS=(--model "$MODEL") ;;
        unmerged) ARGS=(--model "$MODEL" --lora "$AD") ;;
        merge-lora) ARGS=(--model "$MODEL" --lora "$AD" --merge-lora) ;;
        merge-stored) ARGS=(--model "$MODEL" --lora "$AD" --merge-lora=stored) ;;
        merged-file) ARGS=(--model "$MERGED") ;;
      esac
      "$BIN" bench "${ARGS[@]}" -p 64 -n 64 -r 2 --json 2>/dev/null | tail -1 \
        | python3 -c "import json,sys; d=json.load(sys.stdin); d['variant']='$V'; print(json.dumps(d))" >> "$WORK/$N.jsonl"
    done
  done
  python3 - "$WORK/$N.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda v, k: statistics.median(r[k] for r in rows if r["variant"] == v)
b_pp, b_tg = med("base", "pp"), med("base", "tg")
for v in ["base", "unmerged", "merge-lora", "merge-stored", "merged-file"]:
    pp, tg = med(v, "pp"), med(v, "tg")
    print(f"  {v:12s} pp64 {pp:8.1f} tok/s ({pp / b_pp:5.3f}x base)   tg64 {tg:7.1f} tok/s ({tg / b_tg:5.3f}x base)")
PY
  if [ -z "${LLAMA31_NO_SERVE:-}" ]; then
    python3 "$ROOT/bench/lora/serve.py" --bin "$BIN" --model "$MODEL" --adapter "$AD" --rounds "$ROUNDS" --max-tokens 64 \
      | sed 's/^/  /'
  fi
done
