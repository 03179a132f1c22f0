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


def rope_freqs():
    """Llama 3 frequency factors, as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors."""
    base = 1.0 / (THETA ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM))
    low_wl, high_wl = ORIG / LOW, ORIG / HIGH
    out = []
    for f in base:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(SCALE)
        else:
            smooth = (ORIG / wl - LOW) / (HIGH - LOW)
            out.append(1 / ((1 - smooth) / SCALE + smooth))
    return np.array(out, dtype=np.float32)


def main():
    out = sys.argv[1]
    tiny = gguf.GGUFReader(os.path.join(CACHE, "tiny", "llama31-tiny-bf16.gguf"))
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("Llama-3.2-1B-architecture random")
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(VOCAB)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
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
