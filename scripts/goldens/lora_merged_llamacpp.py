#!/usr/bin/env python3
"""llama.cpp loads the merged GGUFs `llama31 quantize --lora` writes (goldens/lora/merged_llamacpp.json).

For each case, `llama31 quantize <tiny hf-untied> OUT --type T --lora goldens/lora/peft-r8` writes a
merged model; llama-cpp-python 0.3.36 (the goldens venv) loads it and scores the LoRA golden text
with the protocol of lora_goldens.py (chunks of 128, F32 KV cache, logits of every position). The
file's SHA-256 is recorded, so the test can check that it writes the very file llama.cpp scored
and then compare its own NLL on that file with llama.cpp's.

    cargo build --release -p llama31-cli
    ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/lora_merged_llamacpp.py [--bin target/release/llama31]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import llama_cpp
import numpy as np

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "goldens" / "lora"
CASES = [("F32", "peft-r8"), ("Q8_0", "peft-r8"), ("F32", "peft-rslora")]


def nll(model: Path, ids: list[int], ctx: int) -> list[float]:
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, logits_all=True,
                          n_threads=2, n_gpu_layers=0, type_k=0, type_v=0, flash_attn=False, seed=0,
                          verbose=False)
    out: list[float] = []
    for s in range(0, len(ids), ctx):
        c = ids[s : s + ctx]
        if len(c) < 2:
            continue
        llm.reset()
        llm.eval(c)
        lg = np.array(llm.scores[: len(c) - 1], dtype=np.float64)
        mx = lg.max(axis=1)
        lse = mx + np.log(np.exp(lg - mx[:, None]).sum(axis=1))
        out.extend((lse - lg[np.arange(len(c) - 1), c[1:]]).tolist())
    llm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "release" / "llama31")
    args = ap.parse_args()
    g = json.loads((OUT / "nll.json").read_text())
    ids, ctx = g["tokens"], g["ctx"]
    result: dict = {
        "about": "llama.cpp (llama-cpp-python %s) scoring the GGUFs `llama31 quantize --lora` writes; see "
                 "scripts/goldens/lora_merged_llamacpp.py" % llama_cpp.__version__,
        "input": "tiny/hf-untied",
        "settings": "Llama(n_ctx=128, n_batch=128, n_ubatch=128, logits_all=True, n_threads=2, type_k=0, "
                    "type_v=0 (F32 KV cache), flash_attn=False); per chunk reset() + eval(chunk)",
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="lora-merged-") as d:
        for ftype, adapter in CASES:
            out = Path(d) / f"{adapter}-{ftype}.gguf"
            subprocess.run([str(args.bin), "quantize", str(CACHE / "tiny" / "hf-untied"), str(out), "--type",
                            ftype, "--lora", str(OUT / adapter)], check=True, capture_output=True)
            sha = hashlib.sha256(out.read_bytes()).hexdigest()
            scores = nll(out, ids, ctx)
            peft = g["adapters"][adapter]["peft_merged"]
            diff = max(abs(a - b) for a, b in zip(scores, peft))
            print(f"{adapter} {ftype}: sha256 {sha[:16]}…, llama.cpp vs PEFT merged max |d| {diff:.3g}")
            result["cases"].append({"type": ftype, "adapter": adapter, "sha256": sha, "llamacpp_nll": scores,
                                    "llamacpp_vs_peft_merged_max_abs": diff})
    (OUT / "merged_llamacpp.json").write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
