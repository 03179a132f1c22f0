#!/usr/bin/env python3
"""Writes a Llama-3.1-8B-architecture GGUF with random weights already in llama.cpp's Q4_K_M type mix,
for memory and speed benchmarks at the real model's size (about 4.9 GB): 32 layers, dim 4096, 32 heads /
8 KV heads, FFN 14336, 128,256-token Llama 3 vocabulary, separate `output.weight`, llama3 RoPE scaling
(factor 8) as `rope_freqs.weight`, with the keys and tensor names llama.cpp's convert_hf_to_gguf.py writes
for Llama 3.1 8B. The tokenizer metadata is copied from the tiny Llama 3.1 GGUF that
scripts/setup-python.sh makes (same vocabulary as Meta's).

Tensor types follow LLAMA_FTYPE_MOSTLY_Q4_K_M in llama.cpp's llama-quant.cpp: output Q6_K; attn_v and
ffn_down Q6_K in the layers `use_more_bits` picks (first and last eighth, every third in between),
Q4_K elsewhere; every other matrix (token_embd included) Q4_K; norms and rope_freqs F32. Tensors are
laid out in the order llama-quantize writes them. No float weights exist and nothing is quantized: each
matrix is written directly as random ggml blocks (random 4/6-bit quants and sub-block scales, fixed
super-block scales chosen so the weights have a standard deviation of about 0.02), one tensor at a time,
so it takes about a minute and well under 1 GB of memory.

usage: make_8b_q4km.py OUT.gguf   (needs numpy and llama.cpp's gguf-py from scripts/setup-python.sh)
"""

import os
import sys
import time

CACHE = os.environ.get("LLAMA31_CACHE", os.path.expanduser("~/.cache/llama31"))
sys.path.insert(0, os.path.join(CACHE, "llama.cpp-src", "gguf-py"))

import numpy as np  # noqa: E402
import gguf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llama_cpp"))
from make_1b import llama_writer, rope_freqs  # noqa: E402

DIM, LAYERS, HEADS, KV_HEADS, FFN, VOCAB = 4096, 32, 32, 8, 14336, 128256
HEAD_DIM = DIM // HEADS
THETA = 500000.0
SCALE, LOW, HIGH, ORIG = 8.0, 1.0, 4.0, 8192

F32, Q4_K, Q6_K = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q6_K
QK_K = 256
Q4_K_BYTES = 144  # f16 d, f16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of 4-bit quants
Q6_K_BYTES = 210  # 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d

# Q4_K value = d*sc*q - dmin*m with sc, m uniform in [0, 64) and q uniform in [0, 16): dmin = 7.5*d
# centres it (E[sc*q] = 7.5*E[m]), and its standard deviation is then about 258*d.
Q4_K_D = 0.02 / 258
Q4_K_DMIN = 7.5 * Q4_K_D
# Q6_K value = d*s*(q - 32) with q uniform in [0, 64) and int8 s uniform in [-Q6_K_S, Q6_K_S): its
# standard deviation is about 171*d for Q6_K_S = 16, which keeps d a normal (not subnormal) f16.
Q6_K_S = 16
Q6_K_D = 0.02 / 171


def use_more_bits(i_layer, n_layers):
    """llama-quant.cpp's use_more_bits (i_layer >= 0, so C++ and Python % agree)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def tensor_specs():
    """(name, (rows, cols), type) in llama-quantize's order: non-layer tensors by name, then each layer's
    tensors by name. cols is ggml's ne[0] (the row length)."""
    specs = [
        ("output.weight", (VOCAB, DIM), Q6_K),
        ("output_norm.weight", (DIM,), F32),
        ("rope_freqs.weight", (HEAD_DIM // 2,), F32),
        ("token_embd.weight", (VOCAB, DIM), Q4_K),
    ]
    for i in range(LAYERS):
        p = f"blk.{i}."
        more = Q6_K if use_more_bits(i, LAYERS) else Q4_K
        specs += [
            (p + "attn_k.weight", (KV_HEADS * HEAD_DIM, DIM), Q4_K),
            (p + "attn_norm.weight", (DIM,), F32),
            (p + "attn_output.weight", (DIM, DIM), Q4_K),
            (p + "attn_q.weight", (DIM, DIM), Q4_K),
            (p + "attn_v.weight", (KV_HEADS * HEAD_DIM, DIM), more),
            (p + "ffn_down.weight", (DIM, FFN), more),
            (p + "ffn_gate.weight", (FFN, DIM), Q4_K),
            (p + "ffn_norm.weight", (DIM,), F32),
            (p + "ffn_up.weight", (FFN, DIM), Q4_K),
        ]
    return specs


def byte_shape(shape, qtype):
    rows, cols = shape
    assert cols % QK_K == 0
    return rows, cols // QK_K * (Q4_K_BYTES if qtype == Q4_K else Q6_K_BYTES)


def f16_bytes(*vals):
    return np.frombuffer(np.array(vals, dtype=np.float16).tobytes(), dtype=np.uint8)


def random_blocks(rng, shape, qtype):
    """Random but valid ggml blocks for a (rows, cols) matrix, as a (rows, bytes per row) uint8 array."""
    rows, nbytes = byte_shape(shape, qtype)
    data = rng.integers(0, 256, size=(rows, nbytes), dtype=np.uint8)
    if qtype == Q4_K:
        blocks = data.reshape(-1, Q4_K_BYTES)
        blocks[:, 0:4] = f16_bytes(Q4_K_D, Q4_K_DMIN)
    else:
        blocks = data.reshape(-1, Q6_K_BYTES)
        blocks[:, 192:208] = rng.integers(-Q6_K_S, Q6_K_S, size=(blocks.shape[0], 16), dtype=np.int8).view(np.uint8)
        blocks[:, 208:210] = f16_bytes(Q6_K_D)
    return data


def main():
    out = sys.argv[1]
    t0 = time.time()
    w = llama_writer(out, "Llama-3.1-8B-architecture random", LAYERS, DIM, FFN, HEADS, KV_HEADS,
                     gguf.LlamaFileType.MOSTLY_Q4_K_M, quantized=True)

    # Declare every tensor first, then write the data one tensor at a time: only one matrix (at most
    # output.weight, 431 MB) is ever in memory.
    specs = tensor_specs()
    for name, shape, qtype in specs:
        if qtype == F32:
            w.add_tensor_info(name, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
        else:
            bshape = byte_shape(shape, qtype)
            w.add_tensor_info(name, bshape, np.dtype(np.uint8), bshape[0] * bshape[1], raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    rng = np.random.default_rng(1234)
    counts = {}
    for name, shape, qtype in specs:
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        if name == "rope_freqs.weight":
            w.write_tensor_data(rope_freqs(HEAD_DIM, THETA, SCALE, LOW, HIGH, ORIG))
        elif qtype == F32:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            data = random_blocks(rng, shape, qtype)
            w.write_tensor_data(data)
            del data
    w.close()
    size = os.path.getsize(out)
    print(f"wrote {out}: {size} bytes ({size / 1e9:.2f} GB), {len(specs)} tensors "
          f"{dict(sorted(counts.items()))}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
