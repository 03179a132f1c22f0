#!/usr/bin/env bash
# MMLU through llama31 and through llama.cpp (llama-cpp-python's low-level API) on the same
# machine in the same run: wall time of each whole pass (load + scoring) and the agreement of the
# predicted letters.
#
# 1. `llama31 eval mmlu` scores the questions and writes every prompt's token ids (--dump-prompts).
# 2. llama.cpp scores the very same ids on the same GGUF (Q4_1: its fast path, 8-bit activations).
# 3. llama.cpp scores them on the F32 GGUF (the Q4_1 weights dequantized: f32 weights,
#    activations and KV cache, the exact reference for llama31's default path); the agreement of
#    predicted letters is the cross-check.
# Both engines reuse the prefix a prompt shares with the one before (llama31 within a subject,
# llama.cpp from the previous prompt), so they do the same work.
#
# 4. llama31 scores them again on its default path (the Q4_1 blocks against 8-bit activations, as
#    llama.cpp multiplies): the speed comparison on the same file and arithmetic.
#
# usage: bench/eval/run.sh [LIMIT] [SHOTS] [THREADS]     LIMIT 0 = all 14,042 questions (hours)
#        PER_SUBJECT=K bench/eval/run.sh 0 ...            the first K questions of every subject
#        SPEED_ONLY=1 bench/eval/run.sh 0 ...             only the timed pair on the same Q4_1 file:
#            step 4 (which then writes the prompts) and step 2; agreement is then llama31's default
#            path against llama.cpp Q4_1 (both with 8-bit activations, so not bit-exact)
# Needs llama-cpp-python 0.3.36 (scripts/goldens/setup-venv-goldens.sh) and the F32 GGUF
# (scripts/goldens/smollm2_f32.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
LIMIT="${1:-200}"; SHOTS="${2:-0}"; T="${3:-$(nproc)}"
Q4="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
F32="$CACHE/SmolLM2-135M-Instruct.F32.gguf"
PY="$CACHE/venv-goldens/bin/python"
BIN="${LLAMA31_BIN:-$ROOT/target/release/llama31}"
[ -x "$PY" ] || { echo "missing $PY: run scripts/goldens/setup-venv-goldens.sh" >&2; exit 2; }
[ -f "$F32" ] || { echo "missing $F32: run scripts/setup-python.sh --tiny" >&2; exit 2; }
if [ -z "${LLAMA31_BIN:-}" ]; then (cd "$ROOT" && cargo build --release --quiet --bin llama31); fi
OUT="${BENCH_OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
limit_args=(); [ "$LIMIT" != 0 ] && limit_args=(--limit "$LIMIT")
[ -n "${PER_SUBJECT:-}" ] && limit_args+=(--per-subject "$PER_SUBJECT")
now() { date +%s.%N; }

if [ -n "${SPEED_ONLY:-}" ]; then
    t0=$(now)
    "$BIN" eval mmlu --model "$Q4" --data "$CACHE/mmlu.jsonl" --shots "$SHOTS" "${limit_args[@]}" \
        -t "$T" --quantized --no-cache --json --dump-prompts "$OUT/prompts.jsonl" > "$OUT/llama31_q.json" 2> "$OUT/llama31_q.log"
    t1=$(now)
    "$PY" "$ROOT/bench/eval/llamacpp_mmlu.py" "$Q4" "$OUT/prompts.jsonl" --threads "$T" > "$OUT/llamacpp_q4.json"
    t2=$(now)
    python3 - "$OUT" "$t0" "$t1" "$t2" "$LIMIT" "$SHOTS" "$T" <<'PY'
import json, sys
out, t0, t1, t2, limit, shots, threads = sys.argv[1], *map(float, sys.argv[2:5]), *sys.argv[5:8]
ours = json.load(open(f"{out}/llama31_q.json"))
q4 = json.load(open(f"{out}/llamacpp_q4.json"))
n = ours["results"]["total"]
w_ours, w_q4 = t1 - t0, t2 - t1
print(f"MMLU, SmolLM2-135M-Instruct Q4_1, {n} questions ({shots}-shot, limit {limit}), {threads} threads, files in {out}")
print(f"{'engine':34} {'wall s':>8} {'q/s':>7} {'accuracy':>9} {'agree':>7}")
print(f"{'llama31 Q4_1 (8-bit activations)':34} {w_ours:8.1f} {n / w_ours:7.2f} {ours['results']['micro_accuracy']:9.4f} {'':>7}")
print(f"{'llama.cpp Q4_1 (8-bit activations)':34} {w_q4:8.1f} {n / w_q4:7.2f} {q4['accuracy_llama_cpp']:9.4f} {q4['agreement']:7.4f}")
print(f"wall-time ratio llama.cpp Q4_1 / llama31 Q4_1: {w_q4 / w_ours:.2f}")
print(f"letters agree: {q4['agree']}/{q4['questions']}, max |Δ logprob| {q4['max_abs_letter_logprob_diff']:.2e}")
PY
    exit 0
fi

t0=$(now)
"$BIN" eval mmlu --model "$Q4" --data "$CACHE/mmlu.jsonl" --shots "$SHOTS" "${limit_args[@]}" \
    -t "$T" --dequantize --no-cache --json --dump-prompts "$OUT/prompts.jsonl" > "$OUT/llama31.json" 2> "$OUT/llama31.log"
t1=$(now)
"$PY" "$ROOT/bench/eval/llamacpp_mmlu.py" "$Q4" "$OUT/prompts.jsonl" --threads "$T" > "$OUT/llamacpp_q4.json"
t2=$(now)
"$PY" "$ROOT/bench/eval/llamacpp_mmlu.py" "$F32" "$OUT/prompts.jsonl" --threads "$T" > "$OUT/llamacpp_f32.json"
t3=$(now)
"$BIN" eval mmlu --model "$Q4" --data "$CACHE/mmlu.jsonl" --shots "$SHOTS" "${limit_args[@]}" \
    -t "$T" --quantized --no-cache --json > "$OUT/llama31_q.json" 2> "$OUT/llama31_q.log"
t4=$(now)

python3 - "$OUT" "$t0" "$t1" "$t2" "$t3" "$t4" "$LIMIT" "$SHOTS" "$T" <<'PY'
import json, sys
out, t0, t1, t2, t3, t4, limit, shots, threads = sys.argv[1], *map(float, sys.argv[2:7]), *sys.argv[7:10]
ours = json.load(open(f"{out}/llama31.json"))
q4 = json.load(open(f"{out}/llamacpp_q4.json"))
f32 = json.load(open(f"{out}/llamacpp_f32.json"))
n = ours["results"]["total"]
ours_q = json.load(open(f"{out}/llama31_q.json"))
w_ours, w_q4, w_f32, w_q = t1 - t0, t2 - t1, t3 - t2, t4 - t3
print(f"MMLU, SmolLM2-135M-Instruct, {n} questions ({shots}-shot, limit {limit}), {threads} threads, files in {out}")
print(f"{'engine':34} {'wall s':>8} {'q/s':>7} {'accuracy':>9} {'agree':>7}")
print(f"{'llama31 (Q4_1 dequantized to f32)':34} {w_ours:8.1f} {n / w_ours:7.2f} {ours['results']['micro_accuracy']:9.4f} {'':>7}")
print(f"{'llama.cpp Q4_1 (8-bit activations)':34} {w_q4:8.1f} {n / w_q4:7.2f} {q4['accuracy_llama_cpp']:9.4f} {q4['agreement']:7.4f}")
print(f"{'llama.cpp F32 (exact reference)':34} {w_f32:8.1f} {n / w_f32:7.2f} {f32['accuracy_llama_cpp']:9.4f} {f32['agreement']:7.4f}")
print(f"{'llama31 Q4_1 (8-bit activations)':34} {w_q:8.1f} {n / w_q:7.2f} {ours_q['results']['micro_accuracy']:9.4f} {'':>7}")
print(f"wall-time ratio llama.cpp Q4_1 / llama31 Q4_1: {w_q4 / w_q:.2f}; llama.cpp F32 / llama31 f32: {w_f32 / w_ours:.2f}")
print(f"cross-check (F32): {f32['agree']}/{f32['questions']} letters agree, max |Δ logprob| {f32['max_abs_letter_logprob_diff']:.2e}")
for d in f32["disagreements"]:
    print(f"  disagree {d['subject']}#{d['index']}: llama31 {d['llama31']} (margin {d['margin_llama31']:.4f}) vs {d['llama_cpp']} ({d['margin_llama_cpp']:.4f})")
PY
