#!/usr/bin/env bash
# Speculative decoding: decode tok/s with a draft model (--draft-model) and with prompt lookup
# (--lookup-ngram) against plain decoding of the same model, greedy, 128 tokens, runs alternating,
# ROUNDS rounds; prints tok/s, forward passes and guesses taken (the replies are identical token for
# token, which the script checks).
# Cases: SmolLM2-135M-Instruct F32 drafted by its Q4_1 file (a trained model and a close draft);
# the 1B benchmark file (bench/llama_cpp, random weights) in F16 drafted by its Q4_K_M quantization,
# and in Q4_K_M drafted by the tiny random Llama 3.1 (same vocabulary, unrelated weights: nearly no
# guess is right, so this measures what a useless draft costs).
# usage: bench/speculate/run.sh [ROUNDS]   (ONLY=smollm2 runs the cases whose name starts so)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
ROUNDS="${1:-2}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --quiet -p llama31-cli)
BIN="$TARGET/release/llama31"
CODE="Write a Python function that checks whether a string is a palindrome, with a docstring and tests."
CASES=(
  "smollm2-f32|$CACHE/SmolLM2-135M-Instruct.F32.gguf|--draft-model $CACHE/SmolLM2-135M-Instruct.Q4_1.gguf|chat"
  "1b-f16|$CACHE/bench-1b-f16.gguf|--draft-model $CACHE/bench-1b-Q4_K_M.llama31.gguf|raw"
  "1b-q4km/tiny|$CACHE/bench-1b-Q4_K_M.llama31.gguf|--draft-model $CACHE/tiny/llama31-tiny-bf16.gguf|raw"
)
for C in "${CASES[@]}"; do
  [ -n "${ONLY:-}" ] && [[ "$C" != "$ONLY"* ]] && continue
  IFS='|' read -r NAME MODEL SPEC MODE <<< "$C"
  RAW=(); [ "$MODE" = raw ] && RAW=(--raw)
  for R in $(seq "$ROUNDS"); do
    for V in plain spec; do
      EXTRA=(); [ "$V" = spec ] && read -r -a EXTRA <<< "$SPEC"
      "$BIN" run --model "$MODEL" --prompt "$CODE" "${RAW[@]}" --temp 0 -n 128 --json "${EXTRA[@]}" \
        2>/dev/null | tail -1 > "/tmp/llama31-spec-$V.json"
    done
    python3 - "$NAME" "$R" <<'PY'
import json, sys
plain = json.load(open("/tmp/llama31-spec-plain.json"))
spec = json.load(open("/tmp/llama31-spec-spec.json"))
assert plain["tokens"] == spec["tokens"], "replies differ"
s = spec["speculation"]
ratio = spec["tok_per_s"]["decode"] / plain["tok_per_s"]["decode"]
print(f"{sys.argv[1]} round {sys.argv[2]}: plain {plain['tok_per_s']['decode']:.2f} tok/s, "
      f"speculative {spec['tok_per_s']['decode']:.2f} tok/s ({ratio:.2f}x), "
      f"{len(spec['tokens'])} tokens in {s['passes']} passes, {s['accepted']} of {s['drafted']} guesses taken")
PY
  done
done
