#!/usr/bin/env bash
# Activation precision (--activations q8|bf16|f32) on quantized GGUFs: quality against the
# dequantized reference (--dequantize, the exact path) and speed against llama.cpp, in one run.
#
# Quality, per file: the reference's log-probabilities over the first CHUNKS chunks of CTX tokens of
# the MMLU text (llama.cpp's --kl-divergence-base protocol) → mean KL, top-1 agreement; and every
# token's NLL over the first TOKENS_TEXT bytes of the same text → mean |dNLL| against the reference.
# Speed: bench/llama_cpp/compare.py (llama31 then llama.cpp, same file, threads and repetitions)
# once per precision.
# Files: SmolLM2-135M-Instruct Q4_1 (fixtures) and the 1B benchmark files of bench/llama_cpp
# (random weights, Llama-3.2-1B shapes) in Q4_K_M and Q8_0, quantized by llama31.
# usage: bench/activations/run.sh [CHUNKS] [CTX] [TEXT_BYTES]   (LLAMA31_NO_SPEED=1 skips speed;
#        LLAMA31_FILES="a.gguf b.gguf" replaces the files)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
CHUNKS="${1:-8}"; CTX="${2:-512}"; BYTES="${3:-20000}"
WORK="${TMPDIR:-/tmp}/llama31-bench-activations"; mkdir -p "$WORK"
TEXT="$WORK/mmlu1500.txt"
python3 - "$CACHE/mmlu.jsonl" "$TEXT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()][:1500]
out = [f"{r['question']}\nA. {r['answer_a']}\nB. {r['answer_b']}\nC. {r['answer_c']}\nD. {r['answer_d']}\n"
       f"Answer: {r['correct_answer']}\n" for r in rows]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out))
PY
head -c "$BYTES" "$TEXT" > "$WORK/short.txt"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --quiet -p llama31-cli)
BIN="$TARGET/release/llama31"
if [ -n "${LLAMA31_FILES:-}" ]; then read -r -a FILES <<< "$LLAMA31_FILES"; else
  FILES=("$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" "$CACHE/bench-1b-Q4_K_M.llama31.gguf" "$CACHE/bench-1b-Q8_0.llama31.gguf")
fi
for F in "${FILES[@]}"; do
  [ -f "$F" ] || { echo "missing $F (bench/llama_cpp/compare.py makes the 1B files)" >&2; continue; }
  N="$(basename "$F" .gguf)"
  echo "== $N: quality ($CHUNKS chunks of $CTX for KL; $BYTES bytes of text for |dNLL|)"
  "$BIN" perplexity --model "$F" --dequantize --file "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" \
    --save-logits "$WORK/$N.base.bin" --json > /dev/null 2>&1
  "$BIN" perplexity --model "$F" --dequantize --file "$WORK/short.txt" --ctx "$CTX" --json 2>/dev/null \
    | tail -1 > "$WORK/$N.ref.json"
  for A in q8 bf16 f32; do
    "$BIN" perplexity --model "$F" --activations "$A" --kl-divergence-base "$WORK/$N.base.bin" --json 2>/dev/null \
      | tail -1 > "$WORK/$N.$A.kl.json"
    "$BIN" perplexity --model "$F" --activations "$A" --file "$WORK/short.txt" --ctx "$CTX" --json 2>/dev/null \
      | tail -1 > "$WORK/$N.$A.nll.json"
    python3 - "$WORK/$N.ref.json" "$WORK/$N.$A.nll.json" "$WORK/$N.$A.kl.json" "$A" <<'PY'
import json, sys
ref, got, kl = (json.load(open(p)) for p in sys.argv[1:4])
a, b = ref["nll"], got["nll"]
assert len(a) == len(b)
d = sum(abs(x - y) for x, y in zip(a, b)) / len(a)
print(f"  {sys.argv[4]:>4}: mean |dNLL| {d:.2e} over {len(a)} tokens; mean KL {kl['kld'][0]:.2e}; "
      f"top-1 {100 * kl['same_top'][0]:.2f} %")
PY
  done
done
[ -n "${LLAMA31_NO_SPEED:-}" ] && exit 0
for A in q8 bf16 f32; do
  echo "== speed, --activations $A"
  python3 "$ROOT/bench/llama_cpp/compare.py" --llama31-args "--activations $A"
done
