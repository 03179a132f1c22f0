#!/usr/bin/env python3
"""Writes a Llama-3.2-1B-architecture GGUF with random weights (F16 matrices, F32 norms) for speed
benchmarks: 16 layers, dim 2048, 32 heads / 8 KV heads, FFN 8192, 128,256-token Llama 3 vocabulary,
tied embeddings, llama3 RoPE scaling (factor 32) as `rope_freqs.weight`, exactly the keys and tensor
names llama.cpp's convert_hf_to_gguf.py writes for Llama 3.2 1B. The tokenizer metadata is copied from
the tiny Llama 3.1 GGUF that scripts/setup-python.sh makes (same vocabulary as Meta's).

usage: make_1b.py OUT.gguf   (needs numpy and llama.cpp's gguf-py from scripts/setup-python.sh)
"""

import math
import os
import sys

CACHE = os.environ.get("LLAMA31_CACHE", os.path.expanduser("~/.cache/llama31"))
sys.path.insert(0, os.path.join(CACHE, "llama.cpp-src", "gguf-py"))

import numpy as np  # noqa: E402
import gguf  # noqa: E402

DIM, LAYERS, HEADS, KV_HEADS, FFN, VOCAB = 2048, 16, 32, 8, 8192, 128256
HEAD_DIM = DIM // HEADS
THETA, EPS, CTX = 500000.0, 1e-5, 131072
SCALE, LOW, HIGH, ORIG = 32.0, 1.0, 4.0, 8192


def rope_freqs(head_dim=HEAD_DIM, theta=THETA, scale=SCALE, low=LOW, high=HIGH, orig=ORIG):
    """Llama 3 frequency factors, as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors."""
    base = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wl, high_wl = orig / low, orig / high
    out = []
    for f in base:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(scale)
        else:
            smooth = (orig / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / scale + smooth))
    return np.array(out, dtype=np.float32)


def llama_writer(out, name, layers, dim, ffn, heads, kv_heads, file_type, quantized=False):
    """A GGUFWriter for `out` holding the `llama.*` keys of a Llama 3 model of this shape (Llama 3
    theta, eps and context; `general.quantization_version` if `quantized`) and the tokenizer keys
    of the tiny Llama 3.1 GGUF."""
    tiny = gguf.GGUFReader(os.path.join(CACHE, "tiny", "llama31-tiny-bf16.gguf"))
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(name)
    w.add_block_count(layers)
    w.add_context_length(CTX)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_dimension_count(dim // heads)
    w.add_vocab_size(VOCAB)
    w.add_file_type(file_type)
    if quantized:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for field in tiny.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                vals = [bytes(field.parts[i]) for i in field.data]
            else:
                vals = [field.parts[i].tolist()[0] for i in field.data]
            w.add_array(field.name, vals)
        elif kind == gguf.GGUFValueType.STRING:
            w.add_string(field.name, bytes(field.parts[field.data[0]]).decode())
        else:
            w.add_key_value(field.name, field.parts[field.data[0]].tolist()[0], kind)
    return w


def main():
    out = sys.argv[1]
    w = llama_writer(out, "Llama-3.2-1B-architecture random", LAYERS, DIM, FFN, HEADS, KV_HEADS,
                     gguf.LlamaFileType.MOSTLY_F16)
    rng = np.random.default_rng(1234)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    w.add_tensor("rope_freqs.weight", rope_freqs())
    w.add_tensor("token_embd.weight", mat(VOCAB, DIM))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(DIM, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", mat(DIM, DIM))
        w.add_tensor(p + "attn_k.weight", mat(KV_HEADS * HEAD_DIM, DIM))
        w.add_tensor(p + "attn_v.weight", mat(KV_HEADS * HEAD_DIM, DIM))
        w.add_tensor(p + "attn_output.weight", mat(DIM, DIM))
        w.add_tensor(p + "ffn_norm.weight", np.ones(DIM, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(FFN, DIM))
        w.add_tensor(p + "ffn_up.weight", mat(FFN, DIM))
        w.add_tensor(p + "ffn_down.weight", mat(DIM, FFN))
    w.add_tensor("output_norm.weight", np.ones(DIM, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
