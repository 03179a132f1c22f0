#!/usr/bin/env python3
"""Writes the small seed inputs of the fuzz targets under fuzz/seeds/<target>/ (committed).

Stdlib only, except the `.pth` seed, which is written by `torch.save` when torch imports (the
project's venv has it: ~/.cache/llama31/venv/bin/python fuzz/make_seeds.py).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"


def put(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs: list[tuple[str, int, bytes]], tensors: list[tuple[str, list[int], int, bytes]]) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, ty, v in kvs:
        out += gguf_str(k) + struct.pack("<I", ty) + v
    offset, data = 0, b""
    for name, dims, ty, raw in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ty, offset)
        data += raw + b"\0" * (-len(raw) % 32)
        offset = len(data)
    out += b"\0" * (-len(out) % 32)
    return out + data


def u32(x):
    return struct.pack("<I", x)


def f32(x):
    return struct.pack("<f", x)


def str_array(items):
    return u32(8) + struct.pack("<Q", len(items)) + b"".join(gguf_str(s) for s in items)


def i32_array(items):
    return u32(5) + struct.pack("<Q", len(items)) + b"".join(struct.pack("<i", x) for x in items)


def model_gguf() -> bytes:
    tokens = ["<s>", "</s>", "a", "b", "ab", "Ġ", "Ġa", "<|im_start|>", "<|im_end|>", "c"]
    kvs = [
        ("general.architecture", 8, gguf_str("llama")),
        ("llama.block_count", 4, u32(1)),
        ("llama.context_length", 4, u32(64)),
        ("llama.embedding_length", 4, u32(8)),
        ("llama.feed_forward_length", 4, u32(16)),
        ("llama.attention.head_count", 4, u32(2)),
        ("llama.attention.head_count_kv", 4, u32(1)),
        ("llama.attention.layer_norm_rms_epsilon", 6, f32(1e-5)),
        ("llama.rope.freq_base", 6, f32(10000.0)),
        ("tokenizer.ggml.model", 8, gguf_str("gpt2")),
        ("tokenizer.ggml.pre", 8, gguf_str("smollm")),
        ("tokenizer.ggml.tokens", 9, str_array(tokens)),
        ("tokenizer.ggml.token_type", 9, i32_array([3, 3, 1, 1, 1, 1, 1, 3, 3, 1])),
        ("tokenizer.ggml.merges", 9, str_array(["a b", "Ġ a"])),
        ("tokenizer.ggml.bos_token_id", 4, u32(0)),
        ("tokenizer.ggml.eos_token_id", 4, u32(1)),
        ("tokenizer.chat_template", 8, gguf_str("{% for m in messages %}{{ m['content'] }}{% endfor %}")),
    ]
    q8_0 = struct.pack("<e", 0.5) + bytes(range(32))
    tensors = [("token_embd.weight", [8, 10], 0, b"\0" * 320), ("blk.0.attn_q.weight", [32, 1], 8, q8_0)]
    return gguf(kvs, tensors)


def safetensors(tensors: dict[str, tuple[str, list[int], bytes]], meta=None) -> bytes:
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def main() -> None:
    put("gguf", "model.gguf", model_gguf())
    put("gguf", "empty.gguf", gguf([], []))
    put("safetensors", "two.safetensors", safetensors(
        {"a": ("F32", [2], f32(1.0) + f32(2.0)), "b": ("BF16", [2, 1], b"\x80\x3f\x00\x40")}, {"format": "pt"}))
    put("safetensors_index", "index.json", json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00001.safetensors"}}).encode())
    put("tokenizer_json", "tiny.json", json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": 5, "content": "<|begin_of_text|>", "special": True, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4}, "merges": ["H e"]},
    }).encode())
    import base64
    put("tokenizer_model", "tiny.model", b"".join(
        base64.b64encode(bytes([i])) + b" " + str(i).encode() + b"\n" for i in range(256)) +
        base64.b64encode(b"He") + b" 256\n")
    put("tokenize", "text.txt", "Hello <|eot_id|> wörld\n\n  123 <|im_start|>".encode())
    put("openai_request", "chat.json", json.dumps({
        "model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                   "properties": {"x": {"type": "integer"}}}}}],
        "tool_choice": "auto", "temperature": 0.5, "max_tokens": 16, "stop": ["\n"], "seed": 1,
        "response_format": {"type": "json_object"}}).encode())
    put("tool_calls", "json.txt", b'{"name": "get_weather", "parameters": {"city": "Paris"}}')
    put("tool_calls", "function.txt", b'<function=get_weather>{"city": "Paris"}</function>')
    put("tool_calls", "builtin.txt", b'<|python_tag|>brave_search.call(query="weather")')
    put("tool_calls", "pythonic.txt", b'[get_weather(city="Paris", n=1), f()]')
    adapter = safetensors({
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": ("F32", [1, 8], f32(0.1) * 8),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": ("F32", [8, 1], f32(0.2) * 8),
    })
    config = json.dumps({"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["q_proj"],
                         "bias": "none", "use_rslora": False, "use_dora": False}).encode()
    put("lora_peft", "adapter", config + b"\xff" + adapter)
    put("lora_gguf", "adapter.gguf", gguf(
        [("general.architecture", 8, gguf_str("llama")), ("general.type", 8, gguf_str("adapter")),
         ("adapter.type", 8, gguf_str("lora")), ("adapter.lora.alpha", 6, f32(2.0))],
        [("blk.0.attn_q.weight.lora_a", [8, 1], 0, f32(0.1) * 8), ("blk.0.attn_q.weight.lora_b", [1, 8], 0, f32(0.2) * 8)]))
    try:
        import io
        import torch
        buf = io.BytesIO()
        torch.save({"w": torch.arange(4, dtype=torch.bfloat16), "n": torch.zeros(2, 2)}, buf)
        put("pth", "tiny.pth", buf.getvalue())
    except ImportError:
        print("torch not importable: the .pth seed is not (re)written")


if __name__ == "__main__":
    main()
