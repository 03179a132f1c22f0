#!/usr/bin/env python3
"""Python tiktoken throughput on the same text: Meta's reference Tokenizer (llama_models, with its
chunking) when importable, and a bare tiktoken.Encoding with Meta's pattern and ranks.
Usage: bench_tiktoken.py TOKENIZER_MODEL TEXT [ITERS]"""
import sys
import time

import tiktoken
import base64

PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def best_of(f, iters):
    best, out = float("inf"), None
    for _ in range(iters):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    model, text_path = sys.argv[1], sys.argv[2]
    iters = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    text = open(text_path, encoding="utf-8").read()
    nbytes = len(text.encode("utf-8"))
    ranks = {}
    for line in open(model, encoding="utf-8").read().splitlines():
        if line.strip():
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    enc = tiktoken.Encoding(name="llama3", pat_str=PAT, mergeable_ranks=ranks, special_tokens={})
    secs, ids = best_of(lambda: enc.encode_ordinary(text), iters)
    print(f"python tiktoken.encode_ordinary bytes={nbytes} tokens={len(ids)} secs={secs:.4f} MB/s={nbytes / secs / 1e6:.2f}")
    try:
        from pathlib import Path

        from llama_models.llama3.tokenizer import Tokenizer
    except ImportError:
        return
    meta = Tokenizer(Path(model))
    secs, ids2 = best_of(lambda: meta.encode(text, bos=False, eos=False), iters)
    print(f"python meta Tokenizer.encode bytes={nbytes} tokens={len(ids2)} secs={secs:.4f} MB/s={nbytes / secs / 1e6:.2f}")


if __name__ == "__main__":
    main()
