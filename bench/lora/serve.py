#!/usr/bin/env python3
"""8 concurrent streams over 4 LoRA adapters against 8 on the base model, one server (stdlib only).

Starts `llama31 serve --parallel 8 --lora a0=ADAPTER ... --lora a3=ADAPTER` (the same adapter file
under four names: four distinct adapters for the engine, with their own terms and cache keys), then
times 8 streaming chat requests at once on the base model, then 8 spread over the 4 adapters (2
each), alternating ROUNDS times; prints aggregate tokens/s of each and the ratio.

  python3 bench/lora/serve.py --model M.gguf --adapter DIR [--rounds 3] [--max-tokens 128]
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "server"))
from load import post_stream, start_server  # noqa: E402


def burst(port, models, max_tokens):
    results = [None] * len(models)

    def one(i, model):
        body = {"model": model, "messages": [{"role": "user", "content": f"Tell me a long story, number {i}."}],
                "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}
        results[i] = post_stream("127.0.0.1", port, body)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=one, args=(i, m)) for i, m in enumerate(models)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    bad = [r for r in results if r[0] != 200]
    if bad:
        sys.exit(f"failed requests: {bad}")
    return sum(r[1] for r in results) / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/llama31")
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [f"a{i}" for i in range(4)]
    cmd = [args.bin, "serve", "--model", args.model, "--port", "0", "--parallel", "8", "--ctx", "512",
           "--alias", "base"] + [x for n in names for x in ("--lora", f"{n}={args.adapter}")]
    srv, port = start_server(cmd)
    try:
        burst(port, ["base"] * 2 + names[:2], 8)  # warm up
        base, mixed = [], []
        for _ in range(args.rounds):
            base.append(burst(port, ["base"] * 8, args.max_tokens))
            mixed.append(burst(port, [names[i % 4] for i in range(8)], args.max_tokens))
    finally:
        srv.terminate()
        srv.wait()
    b, m = statistics.median(base), statistics.median(mixed)
    print(f"8 streams on the base          {b:8.1f} tok/s  (rounds: {', '.join(f'{x:.1f}' for x in base)})")
    print(f"8 streams over 4 LoRA adapters {m:8.1f} tok/s  (rounds: {', '.join(f'{x:.1f}' for x in mixed)})")
    print(f"ratio                          {m / b:8.3f}")
    if args.json:
        print(json.dumps({"base_tok_s": b, "lora_tok_s": m, "ratio": m / b, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
