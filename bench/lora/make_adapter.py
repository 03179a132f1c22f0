#!/usr/bin/env python3
"""A random PEFT LoRA adapter (all seven projections) shaped for a GGUF model, for timing only.

    ~/.cache/llama31/venv/bin/python bench/lora/make_adapter.py MODEL.gguf OUT_DIR [--rank 16]

Reads the model's shapes with llama.cpp's gguf-py ($LLAMA31_CACHE/llama.cpp-src/gguf-py) and writes
adapter_config.json + adapter_model.safetensors (float32, seeded) as PEFT names them.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
sys.path.insert(0, str(CACHE / "llama.cpp-src" / "gguf-py"))
import gguf  # noqa: E402

MODULES = {
    "q_proj": ("self_attn", "attn_q"),
    "k_proj": ("self_attn", "attn_k"),
    "v_proj": ("self_attn", "attn_v"),
    "o_proj": ("self_attn", "attn_output"),
    "gate_proj": ("mlp", "ffn_gate"),
    "up_proj": ("mlp", "ffn_up"),
    "down_proj": ("mlp", "ffn_down"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--rank", type=int, default=16)
    args = ap.parse_args()
    r = gguf.GGUFReader(str(args.model))
    shapes = {t.name: [int(x) for x in t.shape] for t in r.tensors}  # ne order: [in, out]
    n_layers = 1 + max(int(n.split(".")[1]) for n in shapes if n.startswith("blk."))
    rng = np.random.default_rng(16)
    tensors = {}
    for layer in range(n_layers):
        for hf, (parent, stem) in MODULES.items():
            inp, out = shapes[f"blk.{layer}.{stem}.weight"][:2]
            base = f"base_model.model.model.layers.{layer}.{parent}.{hf}"
            tensors[f"{base}.lora_A.weight"] = (rng.standard_normal((args.rank, inp)) / np.sqrt(inp)).astype(np.float32)
            tensors[f"{base}.lora_B.weight"] = (rng.standard_normal((out, args.rank)) * 1e-3).astype(np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": args.rank, "lora_alpha": 2 * args.rank, "target_modules": list(MODULES),
           "bias": "none", "use_rslora": False, "use_dora": False, "modules_to_save": None,
           "base_model_name_or_path": args.model.name, "task_type": "CAUSAL_LM"}
    (args.out / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"{args.out}: rank {args.rank}, {n_layers} layers, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
