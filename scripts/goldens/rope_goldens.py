#!/usr/bin/env python3
"""Golden Llama 3 RoPE inverse frequencies: Meta's `precompute_freqs_cis` + `apply_scaling`
(llama_models/llama3/model.py) transcribed op-for-op to numpy float32, for head_dim 128 (8B/70B/405B)
and 16 (the tiny test models), theta 500000, factor 8 / low 1 / high 4 / old_context_len 8192.
Also cos/sin at a few positions past 8192.

Usage: python scripts/goldens/rope_goldens.py [out.json]   (needs numpy)
"""
import json
import sys
from pathlib import Path

import numpy as np


def apply_scaling(freqs: np.ndarray) -> np.ndarray:
    scale_factor = 8
    low_freq_factor = 1
    high_freq_factor = 4
    old_context_len = 8192
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * np.pi / freqs
    new_freqs = np.where(wavelen > low_freq_wavelen, freqs / scale_factor, freqs)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    return np.where(
        (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen),
        (1 - smooth) * new_freqs / scale_factor + smooth * new_freqs,
        new_freqs,
    ).astype(np.float32)


def freqs_for(dim: int, theta: float) -> np.ndarray:
    exps = np.arange(0, dim, 2)[: dim // 2].astype(np.float32) / np.float32(dim)
    return (np.float32(1.0) / (np.float32(theta) ** exps)).astype(np.float32)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "goldens/model/rope_llama3.json"
    res = {"about": "Meta apply_scaling(precompute freqs) in numpy float32; see scripts/goldens/rope_goldens.py",
           "numpy": np.__version__, "theta": 500000.0, "cases": []}
    for dim in (128, 16):
        base = freqs_for(dim, 500000.0)
        scaled = apply_scaling(base)
        positions = [1, 8191, 8192, 9000, 131071]
        angles = np.outer(np.array(positions, dtype=np.float32), scaled).astype(np.float32)
        res["cases"].append({
            "head_dim": dim,
            "base": [float(x) for x in base],
            "scaled": [float(x) for x in scaled],
            "positions": positions,
            "cos": [[float(x) for x in r] for r in np.cos(angles.astype(np.float64))],
            "sin": [[float(x) for x in r] for r in np.sin(angles.astype(np.float64))],
        })
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
