#!/usr/bin/env python3
"""Quantization goldens from llama.cpp itself.

Calls `ggml_quantize_chunk` (the entry point llama-quantize uses; without an importance matrix it
runs ggml's `quantize_row_*_ref`) from the libggml shipped with llama-cpp-python, via ctypes, on
seeded f32 inputs and writes `goldens/kernels/quantize.json`: per type, cases with the input as
little-endian f32 hex and llama.cpp's output bytes as hex.

Run with the goldens venv: ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/quantize_goldens.py
"""
import ctypes
import json
import os
import pathlib

import numpy as np
import llama_cpp

LIB_DIR = pathlib.Path(llama_cpp.__file__).parent / "lib"
base = ctypes.CDLL(str(LIB_DIR / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
base.ggml_quantize_chunk.restype = ctypes.c_size_t
base.ggml_quantize_chunk.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
]
base.ggml_quantize_init.restype = None
base.ggml_quantize_init.argtypes = [ctypes.c_int]
base.ggml_row_size.restype = ctypes.c_size_t
base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]

TYPES = {  # name: (ggml id, block elems)
    "Q4_0": (2, 32), "Q4_1": (3, 32), "Q5_0": (6, 32), "Q5_1": (7, 32), "Q8_0": (8, 32),
    "Q2_K": (10, 256), "Q3_K": (11, 256), "Q4_K": (12, 256), "Q5_K": (13, 256), "Q6_K": (14, 256),
}


def quantize(tid, x):
    x = np.ascontiguousarray(x, dtype="<f4")
    n = x.size
    size = base.ggml_row_size(tid, n)
    out = (ctypes.c_uint8 * size)()
    base.ggml_quantize_init(tid)
    got = base.ggml_quantize_chunk(tid, x.ctypes.data, out, 0, 1, n, None)
    assert got == size, (got, size)
    return bytes(out)


def inputs(qk, seed):
    rng = np.random.default_rng(seed)
    n = 512 if qk == 256 else 256
    cases = {}
    cases["normal"] = rng.standard_normal(n).astype(np.float32)
    cases["uniform"] = rng.uniform(-3.0, 1.0, n).astype(np.float32)
    x = (rng.standard_normal(n) * 0.02).astype(np.float32)
    x[rng.integers(0, n, 6)] = np.array([5.0, -7.5, 3.25, -0.9, 12.0, -4.0], np.float32)
    cases["outliers"] = x
    x = rng.standard_normal(n).astype(np.float32)
    x[:qk] = 0.0
    x[n - 16:] = 0.0
    cases["zero_blocks"] = x
    cases["tiny"] = (rng.standard_normal(n) * 1e-6).astype(np.float32)
    cases["positive"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
    cases["ints"] = rng.integers(-8, 8, n).astype(np.float32)
    cases["large"] = (rng.standard_normal(n) * 1e3).astype(np.float32)
    if qk == 256:
        cases["row_1024"] = rng.standard_normal(1024).astype(np.float32) * rng.uniform(0.1, 2.0, 1024).astype(np.float32)
    return cases


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    out = {"source": "llama-cpp-python %s libggml-base ggml_quantize_chunk (imatrix NULL)" % llama_cpp.__version__,
           "types": {}}
    for i, (name, (tid, qk)) in enumerate(TYPES.items()):
        cases = []
        for cname, x in inputs(qk, 1000 + i).items():
            q = quantize(tid, x)
            cases.append({"name": cname, "n": int(x.size),
                          "f32_hex": x.astype("<f4").tobytes().hex(), "q_hex": q.hex()})
        out["types"][name] = {"ggml_type": tid, "block_elems": qk, "cases": cases}
    path = root / "goldens" / "kernels" / "quantize.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
