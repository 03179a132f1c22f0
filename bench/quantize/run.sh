#!/usr/bin/env bash
# Quantization quality of `llama31 quantize` vs llama.cpp's, measured like `llama-perplexity --kl-divergence`:
# the F32 GGUF (SmolLM2's Q4_1 dequantized, scripts/goldens/smollm2_f32.py) is the reference; each engine
# saves the reference's log-probs over the first CHUNKS chunks of CTX tokens of the MMLU text (the first
# 1,500 questions with their choices and answer), then reports KL divergence, top-1 agreement and the PPL
# ratio of Q8_0 and Q4_K_M quantizations of it. llama31 runs twice: weights dequantized to f32
# (--dequantize) and with --quantized (the default: blocks multiplied against 8-bit activations, as
# llama.cpp does).
# Needs llama-cpp-python 0.3.36 built from source: scripts/goldens/setup-venv-goldens.sh.
# usage: bench/quantize/run.sh [CHUNKS] [CTX]   (LLAMA31_ONLY=1 skips the llama.cpp half)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
CHUNKS="${1:-32}"; CTX="${2:-512}"
PY="$CACHE/venv-goldens/bin/python"
[ -x "$PY" ] || { echo "missing $PY: run scripts/goldens/setup-venv-goldens.sh" >&2; exit 2; }
F32="$CACHE/SmolLM2-135M-Instruct.F32.gguf"
WORK="${TMPDIR:-/tmp}/llama31-bench-quantize"; mkdir -p "$WORK"
TEXT="$WORK/mmlu1500.txt"
python3 - "$CACHE/mmlu.jsonl" "$TEXT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()][:1500]
out = []
for r in rows:
    out.append(f"{r['question']}\nA. {r['answer_a']}\nB. {r['answer_b']}\nC. {r['answer_c']}\nD. {r['answer_d']}\n"
               f"Answer: {r['correct_answer']}\n")
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out))
PY
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --quiet -p llama31-cli)
BIN="$TARGET/release/llama31"
echo "== llama31 (text $TEXT, $CHUNKS chunks of $CTX)"
"$BIN" perplexity --model "$F32" --file "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --save-logits "$WORK/base.bin" --json
for T in Q8_0 Q4_K_M; do
  "$BIN" quantize "$F32" "$WORK/llama31-$T.gguf" --type "$T"
  for MODE in "--dequantize" "--quantized"; do
    echo "-- $T ${MODE:-(f32 weights)}"
    "$BIN" perplexity --model "$WORK/llama31-$T.gguf" --kl-divergence-base "$WORK/base.bin" $MODE --json
  done
done
[ -n "${LLAMA31_ONLY:-}" ] && exit 0
echo "== llama.cpp"
"$PY" "$ROOT/bench/quantize/kl_llamacpp.py" "$F32" "$TEXT" "$CTX" "$CHUNKS" "$WORK" Q8_0 Q4_K_M
