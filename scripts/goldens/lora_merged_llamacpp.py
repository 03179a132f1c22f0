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
import sys
import tempfile
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_goldens import llamacpp_nll  # noqa: E402

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "goldens" / "lora"
CASES = [("F32", "peft-r8"), ("Q8_0", "peft-r8"), ("F32", "peft-rslora")]


def nll(model: Path, ids: list[int], ctx: int) -> list[float]:
    return llamacpp_nll(str(model), None, ids, ctx)[0]


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
