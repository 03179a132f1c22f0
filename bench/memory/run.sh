#!/usr/bin/env bash
# KV cache types (--kv-type f32|f16|bf16|q8_0): what each costs in accuracy and what it gains in
# speed and memory, in one run.
#  1. Accuracy: SmolLM2-135M-Instruct F32 on goldens/forward/text_long.txt in chunks of 4,096
#     tokens: llama.cpp's KL-divergence protocol against the same model with the f32 cache
#     (perplexity --save-logits / --kl-divergence-base), per type.
#  2. Speed: the 1B benchmark file (bench/llama_cpp, Q4_K_M) decoding 32 tokens after 4,096 and
#     after 8,192 tokens of context (bench -d; each run prefills its depth first, minutes at 8,192),
#     types alternating, ROUNDS rounds.
#  3. Memory: the Llama-3.1-8B-architecture Q4_K_M file (random weights, bench/memory/
#     make_8b_q4km.py) served at 131,072 tokens with a q8_0 cache committed at startup
#     (serve --kv-commit): the plan, the server's RSS, one chat completion.
# usage: bench/memory/run.sh [ROUNDS]   (DEPTHS="4096 8192" by default; LLAMA31_NO_8B=1 skips part 3,
#        LLAMA31_ONLY_8B=1 runs only part 3)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
ROUNDS="${1:-2}"
WORK="${TMPDIR:-/tmp}/llama31-bench-memory"; mkdir -p "$WORK"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --quiet -p llama31-cli)
BIN="$TARGET/release/llama31"
TYPES=(f32 f16 bf16 q8_0)

if [ "${LLAMA31_ONLY_8B:-}" != 1 ]; then
echo "== accuracy: SmolLM2-135M F32, text_long.txt, ctx 4096, KL vs the f32 cache =="
SMOL="$CACHE/SmolLM2-135M-Instruct.F32.gguf"
BASE="$WORK/smollm2-f32kv.kld"
"$BIN" perplexity --model "$SMOL" --file "$ROOT/goldens/forward/text_long.txt" --ctx 4096 \
  --save-logits "$BASE" > /dev/null 2>&1
for T in "${TYPES[@]}"; do
  printf '%-5s ' "$T"
  "$BIN" perplexity --model "$SMOL" --kl-divergence-base "$BASE" --kv-type "$T" --json 2>/dev/null \
    | tail -1
done

echo "== speed: 1B Q4_K_M, tg32 at depth, tok/s (2 threads) =="
ONEB="$CACHE/bench-1b-Q4_K_M.llama31.gguf"
for D in ${DEPTHS:-4096 8192}; do
  for R in $(seq "$ROUNDS"); do
    for T in "${TYPES[@]}"; do
      TG=$("$BIN" bench --model "$ONEB" -p 0 -n 32 -d "$D" -r 1 --kv-type "$T" --json 2>/dev/null \
        | tail -1 | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["tg"])')
      echo "depth $D round $R $T: $TG"
    done
  done
done

fi
[ "${LLAMA31_NO_8B:-}" = 1 ] && exit 0
echo "== memory: 8B-architecture Q4_K_M at 131072 tokens, q8_0 cache committed =="
EIGHT="$CACHE/bench-8b-Q4_K_M.gguf"
[ -f "$EIGHT" ] || "$CACHE/venv/bin/python" "$ROOT/bench/memory/make_8b_q4km.py" "$EIGHT"
"$BIN" info --model "$EIGHT" | sed -n '/memory plan/,/q8_0/p'
LOG="$WORK/serve-8b.log"
"$BIN" serve --model "$EIGHT" --port 0 --alias llama-8b --parallel 1 --ctx 131072 --kv-type q8_0 --kv-commit \
  > "$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
ADDR=""
for _ in $(seq 600); do
  ADDR=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1 || true)
  if [ -n "$ADDR" ] && curl -sf "$ADDR/ready" > /dev/null 2>&1; then break; fi
  sleep 1
done
grep -E "memory plan|context" "$LOG" || true
echo "server RSS after startup: $(awk '/VmRSS/ {printf "%.2f GiB", $2/1048576}' /proc/$PID/status)"
START=$(date +%s.%N)
curl -sf "$ADDR/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"llama-8b","messages":[{"role":"user","content":"Hello"}],"max_tokens":8}' \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("reply usage:", r["usage"])'
echo "request took $(echo "$(date +%s.%N) - $START" | bc) s"
echo "server RSS after the request: $(awk '/VmRSS/ {printf "%.2f GiB", $2/1048576}' /proc/$PID/status)"
kill -TERM $PID; wait $PID || true
