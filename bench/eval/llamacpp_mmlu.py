#!/usr/bin/env python3
"""MMLU letter predictions by llama.cpp (llama-cpp-python's low-level API) on the very prompts llama31
scored, for an independent cross-check and a same-machine timing.

Input: the JSON lines that `llama31 eval mmlu --dump-prompts FILE` writes, one per scored question:
`tokens` (the whole prompt's ids, BOS and chat tokens included), `letter_ids` (the ids compared for
A, B, C, D), `answer`, and llama31's `pred` and `logprobs`.

For every question llama.cpp evaluates the prompt ids and the letter with the highest logit among
`letter_ids` at the last position is its prediction. Like llama31, it keeps the KV cache of the
previous prompt and only evaluates the ids after the prefix both share (`llama_memory_seq_rm` from
there), so both do the same work; prompts are fed in batches of `--batch` tokens.

For the exact reference use the F32 GGUF (SmolLM2's Q4_1 weights dequantized by gguf-py, made by
scripts/goldens/smollm2_f32.py): weights, activations and KV cache are then all f32, as in llama31's
default path. On the Q4_1 file llama.cpp quantizes activations to 8 bits (faster, not exact).

Prints one JSON object: questions, agreement of predicted letters, accuracy of both, the questions
where they disagree (with both margins), and the wall time of loading + scoring.

usage: python llamacpp_mmlu.py MODEL.gguf PROMPTS.jsonl [--threads N] [--batch 512] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import llama_cpp

LETTERS = "ABCD"
GGML_TYPE_F32 = 0


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):  # noqa: ARG001
    pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--out", help="write per-question results as JSON lines")
    args = ap.parse_args()

    rows = [json.loads(line) for line in open(args.prompts, encoding="utf-8") if line.strip()]
    if not rows:
        sys.exit("no prompts")
    longest = max(len(r["tokens"]) for r in rows)

    start = time.perf_counter()
    llama_cpp.llama_log_set(_quiet, None)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        sys.exit(f"llama.cpp could not load {args.model}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = longest + 8
    cparams.n_batch = args.batch
    cparams.n_ubatch = args.batch
    cparams.n_threads = args.threads
    cparams.n_threads_batch = args.threads
    cparams.type_k = GGML_TYPE_F32
    cparams.type_v = GGML_TYPE_F32
    cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        sys.exit("llama.cpp could not create a context")
    mem = llama_cpp.llama_get_memory(ctx)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    batch = llama_cpp.llama_batch_init(args.batch, 0, 1)
    loaded = time.perf_counter()

    def decode(tokens: list[int], pos0: int, want_last: bool) -> None:
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = want_last and i == len(tokens) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")

    prev: list[int] = []
    results = []
    run_tokens = 0
    for r in rows:
        toks = r["tokens"]
        lcp = 0
        for a, b in zip(prev, toks):
            if a != b:
                break
            lcp += 1
        lcp = min(lcp, len(toks) - 1)
        if not llama_cpp.llama_memory_seq_rm(mem, 0, lcp, -1):
            llama_cpp.llama_memory_clear(mem, True)
            lcp = 0
        for s in range(lcp, len(toks), args.batch):
            chunk = toks[s:s + args.batch]
            decode(chunk, s, s + len(chunk) == len(toks))
        run_tokens += len(toks) - lcp
        prev = toks
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
        letter = np.array([logits[i] for i in r["letter_ids"]], dtype=np.float64)
        m = letter.max()
        lse = m + np.log(np.exp(logits.astype(np.float64) - m).sum())
        results.append({"subject": r["subject"], "index": r["index"], "pred": LETTERS[int(letter.argmax())],
                        "logprobs": [float(x - lse) for x in letter]})
    done = time.perf_counter()

    agree = sum(a["pred"] == r["pred"] for a, r in zip(results, rows))
    correct_ref = sum(a["pred"] == r["answer"] for a, r in zip(results, rows))
    correct_ours = sum(r["pred"] == r["answer"] for r in rows)
    disagreements = []
    max_diff = 0.0
    for a, r in zip(results, rows):
        diff = max(abs(x - y) for x, y in zip(a["logprobs"], r["logprobs"]))
        max_diff = max(max_diff, diff)
        if a["pred"] != r["pred"]:
            ours = sorted(r["logprobs"])
            ref = sorted(a["logprobs"])
            disagreements.append({"subject": r["subject"], "index": r["index"], "llama31": r["pred"],
                                  "llama_cpp": a["pred"], "margin_llama31": ours[-1] - ours[-2],
                                  "margin_llama_cpp": ref[-1] - ref[-2]})
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for a in results:
                f.write(json.dumps(a) + "\n")
    print(json.dumps({
        "model": args.model,
        "questions": len(rows),
        "agreement": agree / len(rows),
        "agree": agree,
        "accuracy_llama_cpp": correct_ref / len(rows),
        "accuracy_llama31": correct_ours / len(rows),
        "max_abs_letter_logprob_diff": max_diff,
        "disagreements": disagreements,
        "prompt_tokens": sum(len(r["tokens"]) for r in rows),
        "run_tokens": run_tokens,
        "load_seconds": loaded - start,
        "score_seconds": done - loaded,
        "questions_per_s": len(rows) / (done - loaded),
        "threads": args.threads,
    }, indent=1))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)


if __name__ == "__main__":
    main()
