#!/usr/bin/env python3
"""llama31 vs llama.cpp on the same GGUF files, same threads, in one run; prints a table of ratios.

Models: (a) SmolLM2-135M-Instruct Q4_1 (from the fixtures); (b) a Llama-3.2-1B-architecture model
with random weights (bench/llama_cpp/make_1b.py) in Q4_K_M and Q8_0, quantized by llama.cpp's
quantizer (bench/llama_cpp/quantize.py) and, when `llama31 quantize` exists, by ours. Files are made
once into $LLAMA31_CACHE. Each measurement runs llama31 first, then llama.cpp, with the same P, N,
threads and repetitions (best of R).

usage: compare.py [--p 512] [--n 128] [--threads T] [--reps 3] [--only NAME] [--llama31-args "..."]
                  [--llamacpp-no-mmap]
Needs llama-cpp-python built from source: scripts/goldens/setup-venv-goldens.sh.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("LLAMA31_CACHE", os.path.expanduser("~/.cache/llama31"))
LCP = os.path.join(CACHE, "venv-goldens", "bin", "python")
VENV = os.path.join(CACHE, "venv", "bin", "python")
BIN = os.path.join(ROOT, "target", "release", "llama31")
HERE = os.path.join(ROOT, "bench", "llama_cpp")


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ensure(path, make):
    if not os.path.exists(path):
        print(f"making {os.path.basename(path)}", file=sys.stderr)
        make(path + ".tmp")
        os.replace(path + ".tmp", path)
    return path


def models():
    yield "SmolLM2-135M Q4_1", os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
    f16 = ensure(os.path.join(CACHE, "bench-1b-f16.gguf"),
                 lambda p: subprocess.run([VENV, os.path.join(HERE, "make_1b.py"), p], check=True))
    has_ours = subprocess.run([BIN, "quantize", "--help"], capture_output=True).returncode == 0
    for kind in ("Q4_K_M", "Q8_0"):
        yield f"1B {kind} (llama.cpp-quantized)", ensure(
            os.path.join(CACHE, f"bench-1b-{kind}.llamacpp.gguf"),
            lambda p, k=kind: subprocess.run([LCP, os.path.join(HERE, "quantize.py"), f16, p, k],
                                             check=True, capture_output=True))
        if has_ours:
            yield f"1B {kind} (llama31-quantized)", ensure(
                os.path.join(CACHE, f"bench-1b-{kind}.llama31.gguf"),
                lambda p, k=kind: subprocess.run([BIN, "quantize", f16, p, "--type", k],
                                                 check=True, capture_output=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=512)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=None, help="run only models whose name contains this")
    ap.add_argument("--llama31-args", default="", help="extra flags for llama31 bench")
    ap.add_argument("--llamacpp-no-mmap", action="store_true",
                    help="llama.cpp reads the file into memory instead of mapping it (its --no-mmap)")
    a = ap.parse_args()
    if not os.path.exists(LCP):
        sys.exit(f"missing {LCP}: run scripts/goldens/setup-venv-goldens.sh")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "llama31"], cwd=ROOT, check=True)
    rows = []
    for name, path in models():
        if a.only and a.only not in name:
            continue
        args = [str(a.p), str(a.n), str(a.threads), str(a.reps)]
        ours = run([BIN, "bench", "--model", path, "-p", args[0], "-n", args[1], "-t", args[2],
                    "-r", args[3], "--json", *a.llama31_args.split()])
        theirs = run([LCP, os.path.join(HERE, "llama_bench.py"), path, *args,
                      *(["no-mmap"] if a.llamacpp_no_mmap else [])])
        rows.append((name, ours, theirs))
        print(f"{name}: pp {ours['pp']:.1f} vs {theirs['pp']:.1f}, tg {ours['tg']:.1f} vs {theirs['tg']:.1f}",
              file=sys.stderr)
    print(f"\n{a.threads} threads, pp{a.p} / tg{a.n}, best of {a.reps}; llama31 args: {a.llama31_args or '(none)'}; "
          f"llama.cpp {'--no-mmap' if a.llamacpp_no_mmap else 'mmap (default)'}\n")
    print("| model | pp llama31 | pp llama.cpp | ratio | tg llama31 | tg llama.cpp | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, o, t in rows:
        print(f"| {name} | {o['pp']:.1f} | {t['pp']:.1f} | {o['pp'] / t['pp']:.2f} | "
              f"{o['tg']:.1f} | {t['tg']:.1f} | {o['tg'] / t['tg']:.2f} |")


if __name__ == "__main__":
    main()
