#!/usr/bin/env python3
"""Golden values for GGUF block dequantization, from gguf-py (llama.cpp's Python package).

Writes goldens/kernels/dequant.json: for each quant type, a few blocks of seeded random bytes (with
finite f16 scales) and the float32 values gguf-py's `dequantize` produces, as u32 bit patterns.

Usage (any venv with `pip install gguf numpy`, e.g. python3 -m venv /tmp/v && /tmp/v/bin/pip install gguf numpy):
    python scripts/goldens/dequant_goldens.py [out.json]
"""
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

# (type, byte offsets of f16 scale fields inside one block)
TYPES = [
    (T.Q4_0, [0]),
    (T.Q4_1, [0, 2]),
    (T.Q5_0, [0]),
    (T.Q5_1, [0, 2]),
    (T.Q8_0, [0]),
    (T.Q2_K, [80, 82]),
    (T.Q3_K, [108]),
    (T.Q4_K, [0, 2]),
    (T.Q5_K, [0, 2]),
    (T.Q6_K, [208]),
]
N_BLOCKS = 3


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "goldens/kernels/dequant.json"
    rng = np.random.default_rng(20240723)
    result = {
        "about": "gguf-py dequantize() of seeded random blocks; values are float32 bit patterns",
        "generator": f"scripts/goldens/dequant_goldens.py, gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}",
        "types": {},
    }
    for qt, scale_offs in TYPES:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
        raw = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
        for b in range(N_BLOCKS):
            for off in scale_offs:
                # finite, sign-mixed scales with magnitudes 2^-12 .. 2^2
                v = np.float16(rng.uniform(0.5, 1.0) * 2.0 ** rng.integers(-12, 3) * rng.choice([-1, 1]))
                raw[b, off:off + 2] = np.frombuffer(v.tobytes(), dtype=np.uint8)
        vals = dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
        assert vals.size == N_BLOCKS * block_size
        assert np.all(np.isfinite(vals))
        result["types"][qt.name] = {
            "ggml_type": int(qt),
            "block_elems": block_size,
            "block_bytes": type_size,
            "bytes_hex": raw.tobytes().hex(),
            "f32_bits": [int(x) for x in vals.view(np.uint32)],
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=0) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
