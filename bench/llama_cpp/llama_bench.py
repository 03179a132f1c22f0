"""llama.cpp's prefill/decode throughput on a GGUF, timed as llama-bench times it: one batch of P
prompt tokens from an empty cache, then N single-token decode steps from an empty cache; best of R.
Uses llama-cpp-python's low-level API (llama_decode with a batch), not Llama.eval, whose Python
overhead per token would flatter us. Prints {"pp": tok/s, "tg": tok/s} as its last line.

usage: python llama_bench.py MODEL.gguf P N THREADS REPS [no-mmap]
  no-mmap: read the file into memory instead of mapping it (llama.cpp's --no-mmap)
"""

import json
import sys
import time

import llama_cpp


def main() -> None:
    path, p, n, threads, reps = sys.argv[1], *map(int, sys.argv[2:6])
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    if "no-mmap" in sys.argv[6:]:
        mparams.use_mmap = False
    model = llama_cpp.llama_model_load_from_file(path.encode(), mparams)
    if not model:
        sys.exit(f"llama.cpp could not load {path}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = max(p, n) + 16
    cparams.n_batch = max(p, 1)
    cparams.n_ubatch = max(p, 1)
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    batch = llama_cpp.llama_batch_init(max(p, 1), 0, 1)

    def token(i: int) -> int:
        return (i * 2654435761) % (2**32) % n_vocab

    def decode(tokens: list[int], pos0: int) -> None:
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")

    def clear() -> None:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)

    best_pp = best_tg = 0.0
    for _ in range(reps):
        if p > 0:
            clear()
            start = time.perf_counter()
            decode([token(i) for i in range(p)], 0)
            llama_cpp.llama_synchronize(ctx)
            best_pp = max(best_pp, p / (time.perf_counter() - start))
        if n > 0:
            clear()
            start = time.perf_counter()
            for pos in range(n):
                decode([token(pos)], pos)
            llama_cpp.llama_synchronize(ctx)
            best_tg = max(best_tg, n / (time.perf_counter() - start))
    print(json.dumps({"pp": best_pp, "tg": best_tg}))


if __name__ == "__main__":
    main()
