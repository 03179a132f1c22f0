#!/usr/bin/env python3
"""Write tiny random Llama 3.1 models in every file format the project reads.

Run with the venv made by scripts/setup-python.sh:

    ~/.cache/llama31/venv/bin/python scripts/make-tiny-models.py --out ~/.cache/llama31/tiny

Output (deterministic: weights come from numpy default_rng(seed) in float64, then
cast float64 -> float32 -> bf16/f16 with torch's round-to-nearest-even):

  hf-untied/            HF dir, BF16, sharded safetensors (index + >= 2 shards), config.json,
                        tokenizer.json, tokenizer_config.json (Llama 3.1 chat template),
                        special_tokens_map.json, generation_config.json
  hf-tied/              HF dir, F16, tie_word_embeddings=true, single model.safetensors
  meta/                 the hf-untied weights in Meta layout: consolidated.00.pth (torch.save,
                        bf16, Meta names, q/k in Meta's interleaved rotary layout),
                        params.json, tokenizer.model
  meta-mp2/             the same, split in 2 model-parallel shards the way Meta's fairscale
                        layers shard them (consolidated.00.pth, consolidated.01.pth)
  llama31-tiny-bf16.gguf  llama.cpp's convert_hf_to_gguf.py run on hf-untied with --outtype bf16
  manifest.json         per model: sha256 of every tensor's raw bytes (+ dtype, shape), the
                        GGUF conversion command, the generator settings.

The structure is Llama 3.1's (GQA, llama3 RoPE scaling, untied head, 128,256 vocab) at a
tiny width; weight scales are "realistic" (embeddings ~N(0,1), projections ~1/sqrt(fan_in),
a scaled-up output head) so that the next-token distributions are peaky.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))

# ---- the tiny Llama 3.1 shape -------------------------------------------------------------
DIM = 64
N_LAYERS = 2
N_HEADS = 4
N_KV_HEADS = 2
HEAD_DIM = DIM // N_HEADS  # 16
VOCAB = 128256
MULTIPLE_OF = 32
FFN_DIM_MULTIPLIER = 1.3
NORM_EPS = 1e-5
ROPE_THETA = 500000.0
ROPE_SCALING = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3",
}
MAX_POS = 131072
BOS = 128000
EOS = [128001, 128008, 128009]

# ---- weight scales (std of the normal each weight is drawn from) --------------------------
EMB_STD = 1.0
QK_GAIN = 1.5  # q/k a bit larger than 1/sqrt(fan_in): attention is not uniform
OUT_GAIN = 0.7  # output head std = OUT_GAIN: logits std ~ OUT_GAIN*sqrt(DIM) ~ 5.6
TIED_EMB_STD = 0.7  # tied model: the embedding is the head, so it sets the logit scale
NORM_JITTER = 0.1  # norm weights 1 + NORM_JITTER * N(0,1)

SEED_UNTIED = 31_000
SEED_TIED = 31_001


def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's FeedForward rule (llama_models/llama3/model.py)."""
    hidden = 4 * dim
    hidden = int(2 * hidden / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


FFN = ffn_hidden_dim(DIM, MULTIPLE_OF, FFN_DIM_MULTIPLIER)


def to_torch(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    # float64 -> float32 (numpy, round to nearest) -> bf16/f16 (torch, round to nearest even)
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32))).to(dtype)


def make_meta_weights(seed: int, tied: bool, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random weights in Meta layout and names (q/k rows in Meta's interleaved rotary order)."""
    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return rng.standard_normal(shape, dtype=np.float64) * std

    def norm_w():
        return 1.0 + NORM_JITTER * rng.standard_normal(DIM, dtype=np.float64)

    sd: dict[str, np.ndarray] = {}
    sd["tok_embeddings.weight"] = normal((VOCAB, DIM), TIED_EMB_STD if tied else EMB_STD)
    for i in range(N_LAYERS):
        p = f"layers.{i}."
        sd[p + "attention.wq.weight"] = normal((N_HEADS * HEAD_DIM, DIM), QK_GAIN / np.sqrt(DIM))
        sd[p + "attention.wk.weight"] = normal((N_KV_HEADS * HEAD_DIM, DIM), QK_GAIN / np.sqrt(DIM))
        sd[p + "attention.wv.weight"] = normal((N_KV_HEADS * HEAD_DIM, DIM), 1.0 / np.sqrt(DIM))
        sd[p + "attention.wo.weight"] = normal((DIM, N_HEADS * HEAD_DIM), 1.0 / np.sqrt(N_HEADS * HEAD_DIM))
        sd[p + "feed_forward.w1.weight"] = normal((FFN, DIM), 1.0 / np.sqrt(DIM))
        sd[p + "feed_forward.w2.weight"] = normal((DIM, FFN), 1.0 / np.sqrt(FFN))
        sd[p + "feed_forward.w3.weight"] = normal((FFN, DIM), 1.0 / np.sqrt(DIM))
        sd[p + "attention_norm.weight"] = norm_w()
        sd[p + "ffn_norm.weight"] = norm_w()
    sd["norm.weight"] = norm_w()
    if not tied:
        sd["output.weight"] = normal((VOCAB, DIM), OUT_GAIN)
    return {k: to_torch(v, dtype) for k, v in sd.items()}


def permute_to_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """transformers' convert_llama_weights_to_hf.py permute: Meta interleaved -> HF half-split."""
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2).contiguous()


def permute_to_meta(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of permute_to_hf."""
    dim1, dim2 = w.shape
    return w.view(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(1, 2).reshape(dim1, dim2).contiguous()


def meta_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {"model.embed_tokens.weight": sd["tok_embeddings.weight"]}
    for i in range(N_LAYERS):
        m, h = f"layers.{i}.", f"model.layers.{i}."
        out[h + "self_attn.q_proj.weight"] = permute_to_hf(sd[m + "attention.wq.weight"], N_HEADS)
        out[h + "self_attn.k_proj.weight"] = permute_to_hf(sd[m + "attention.wk.weight"], N_KV_HEADS)
        out[h + "self_attn.v_proj.weight"] = sd[m + "attention.wv.weight"]
        out[h + "self_attn.o_proj.weight"] = sd[m + "attention.wo.weight"]
        out[h + "mlp.gate_proj.weight"] = sd[m + "feed_forward.w1.weight"]
        out[h + "mlp.down_proj.weight"] = sd[m + "feed_forward.w2.weight"]
        out[h + "mlp.up_proj.weight"] = sd[m + "feed_forward.w3.weight"]
        out[h + "input_layernorm.weight"] = sd[m + "attention_norm.weight"]
        out[h + "post_attention_layernorm.weight"] = sd[m + "ffn_norm.weight"]
    out["model.norm.weight"] = sd["norm.weight"]
    if "output.weight" in sd:
        out["lm_head.weight"] = sd["output.weight"]
    return out


def hf_config(tied: bool, dtype: str) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": DIM,
        "initializer_range": 0.02,
        "intermediate_size": FFN,
        "max_position_embeddings": MAX_POS,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": N_HEADS,
        "num_hidden_layers": N_LAYERS,
        "num_key_value_heads": N_KV_HEADS,
        "pretraining_tp": 1,
        "rms_norm_eps": NORM_EPS,
        "rope_scaling": dict(ROPE_SCALING),
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def meta_params() -> dict:
    return {
        "dim": DIM,
        "n_layers": N_LAYERS,
        "n_heads": N_HEADS,
        "n_kv_heads": N_KV_HEADS,
        "vocab_size": VOCAB,
        "multiple_of": MULTIPLE_OF,
        "ffn_dim_multiplier": FFN_DIM_MULTIPLIER,
        "norm_eps": NORM_EPS,
        "rope_theta": ROPE_THETA,
        "use_scaled_rope": True,
    }


def tensor_digest(t: torch.Tensor) -> dict:
    t = t.contiguous()
    raw = t.view(torch.uint8)
    return {
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "sha256": hashlib.sha256(raw.numpy().tobytes()).hexdigest(),
    }


def write_hf(out: Path, sd_meta: dict[str, torch.Tensor], tied: bool, dtype: torch.dtype, shard: str) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    dtype_name = str(dtype).removeprefix("torch.")
    cfg_dict = hf_config(tied, dtype_name)
    config = LlamaConfig(**{k: v for k, v in cfg_dict.items() if k != "architectures"})
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config).to(dtype)
    hf_sd = meta_to_hf(sd_meta)
    model.load_state_dict(hf_sd, strict=not tied, assign=True)
    if tied:
        model.tie_weights()
    model.eval()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out, max_shard_size=shard, safe_serialization=True)
    # Check what was written against what we meant to write, bit for bit.
    from safetensors.torch import load_file

    written: dict[str, torch.Tensor] = {}
    for f in sorted(out.glob("*.safetensors")):
        written.update(load_file(f))
    want = {k: v for k, v in hf_sd.items() if not (tied and k == "lm_head.weight")}
    assert set(written) == set(want), (sorted(written), sorted(want))
    for k, v in want.items():
        assert written[k].dtype == dtype and torch.equal(written[k], v), k

    # generation_config.json as Meta's Llama-3.1-8B-Instruct ships it
    (out / "generation_config.json").write_text(
        json.dumps(
            {"bos_token_id": BOS, "do_sample": True, "eos_token_id": EOS, "temperature": 0.6, "top_p": 0.9},
            indent=2,
        )
        + "\n"
    )
    # tokenizer.json + tokenizer_config.json (with the official Llama 3.1 chat template)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(llama31_tokenizer_json(out)),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        clean_up_tokenization_spaces=True,
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=MAX_POS,
    )
    tok.chat_template = (CACHE / "llama3.1_chat_template_hf.jinja").read_text()
    tok.save_pretrained(out)
    # transformers >= 4.47 writes the template to chat_template.jinja; Meta's Llama 3.1 HF repos
    # (and older readers) keep it inside tokenizer_config.json, so put it there.
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["chat_template"] = tok.chat_template
    tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    (out / "chat_template.jinja").unlink(missing_ok=True)
    (out / "tokenizer.src.json").unlink(missing_ok=True)
    return {k: tensor_digest(v) for k, v in sorted(written.items())}


# Meta's Llama 3.1 special tokens, in id order from 128000 (llama_models/llama3/tokenizer.py).
META_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
] + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - 12)]


def llama31_tokenizer_json(out: Path) -> Path:
    """The npm tokenizer.json fixture names its added tokens as Llama 3.0 did (no <|eom_id|>,
    <|python_tag|>, ...); Meta's Llama 3.1 HF repos use the 3.1 names. Write a copy with the
    names of llama_models' tokenizer.py so the tiny HF dir (and the GGUF made from it) looks like
    a real Llama 3.1 checkpoint. Ordinary tokens and merges are unchanged."""
    data = json.loads((CACHE / "tokenizer.json").read_text(encoding="utf-8"))
    base = 128000
    for t in data["added_tokens"]:
        if base <= t["id"] < base + len(META_SPECIALS):
            t["content"] = META_SPECIALS[t["id"] - base]
    path = out / "tokenizer.src.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def shard_meta(sd: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    """Split like fairscale's layers in llama_models/llama3/model.py:
    VocabParallelEmbedding (tok_embeddings) and ColumnParallelLinear (wq wk wv w1 w3 output)
    split dim 0; RowParallelLinear (wo w2) split dim 1; RMSNorm weights are replicated."""
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    for k, v in sd.items():
        if k == "tok_embeddings.weight" or k == "output.weight" or any(
            s in k for s in ("attention.wq.", "attention.wk.", "attention.wv.", "feed_forward.w1.", "feed_forward.w3.")
        ):
            parts = torch.chunk(v, n, dim=0)
        elif any(s in k for s in ("attention.wo.", "feed_forward.w2.")):
            parts = torch.chunk(v, n, dim=1)
        elif k.endswith("norm.weight"):
            parts = [v] * n
        else:
            raise KeyError(k)
        assert len(parts) == n and all(p.shape == parts[0].shape for p in parts), k
        for i, p in enumerate(parts):
            shards[i][k] = p.clone().contiguous()
    return shards


def write_meta(out: Path, sd: dict[str, torch.Tensor], mp: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    digests: dict[str, dict] = {}
    shards = [sd] if mp == 1 else shard_meta(sd, mp)
    for i, s in enumerate(shards):
        name = f"consolidated.{i:02d}.pth"
        torch.save({k: v.clone().contiguous() for k, v in s.items()}, out / name)
        for k, v in s.items():
            digests[f"{name}:{k}"] = tensor_digest(v)
    (out / "params.json").write_text(json.dumps(meta_params(), indent=2) + "\n")
    shutil.copyfile(CACHE / "tokenizer.model", out / "tokenizer.model")
    return dict(sorted(digests.items()))


def write_gguf(src: Path, out_file: Path) -> tuple[dict, list[str]]:
    conv_dir = CACHE / "llama.cpp-src"
    cmd = [
        sys.executable,
        str(conv_dir / "convert_hf_to_gguf.py"),
        str(src),
        "--outtype",
        "bf16",
        "--outfile",
        str(out_file),
    ]
    if out_file.exists():
        out_file.unlink()
    log = out_file.with_suffix(".convert.log")
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"convert_hf_to_gguf.py failed ({r.returncode}); log: {log}")
    sys.path.insert(0, str(conv_dir / "gguf-py"))
    import gguf  # the vendored gguf-py

    reader = gguf.GGUFReader(str(out_file))
    digests = {}
    for t in reader.tensors:
        digests[t.name] = {
            "dtype": t.tensor_type.name,
            "shape": [int(x) for x in t.shape],  # GGUF order (fastest dim first)
            "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest(),
        }
    shown = ["python", "convert_hf_to_gguf.py", "<tiny>/hf-untied", "--outtype", "bf16", "--outfile",
             f"<tiny>/{out_file.name}"]
    return dict(sorted(digests.items())), shown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=CACHE / "tiny")
    ap.add_argument("--skip-gguf", action="store_true", help="do not run convert_hf_to_gguf.py")
    args = ap.parse_args()
    out: Path = args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    manifest: dict = {
        "about": "Tiny random Llama 3.1 models written by scripts/make-tiny-models.py. sha256 is over each "
        "tensor's raw little-endian bytes as stored in the file (safetensors/pth: row-major; GGUF: the tensor "
        "data block). Meta keys are '<file>:<tensor>'. GGUF shapes are in GGUF order.",
        "generator": {
            "dim": DIM, "n_layers": N_LAYERS, "n_heads": N_HEADS, "n_kv_heads": N_KV_HEADS, "head_dim": HEAD_DIM,
            "ffn_dim": FFN, "vocab": VOCAB, "multiple_of": MULTIPLE_OF, "ffn_dim_multiplier": FFN_DIM_MULTIPLIER,
            "seed_untied": SEED_UNTIED, "seed_tied": SEED_TIED, "emb_std": EMB_STD, "qk_gain": QK_GAIN,
            "out_std": OUT_GAIN, "tied_emb_std": TIED_EMB_STD, "norm_jitter": NORM_JITTER,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        },
        "models": {},
    }
    import transformers

    manifest["generator"]["versions"]["transformers"] = transformers.__version__

    sd_untied = make_meta_weights(SEED_UNTIED, tied=False, dtype=torch.bfloat16)
    sd_tied = make_meta_weights(SEED_TIED, tied=True, dtype=torch.float16)

    print("writing hf-untied", file=sys.stderr)
    manifest["models"]["hf-untied"] = {"format": "hf", "dtype": "bf16", "tensors": write_hf(
        out / "hf-untied", sd_untied, tied=False, dtype=torch.bfloat16, shard="20MB")}
    n_shards = len(list((out / "hf-untied").glob("model-*-of-*.safetensors")))
    assert n_shards >= 2 and (out / "hf-untied" / "model.safetensors.index.json").exists(), n_shards
    print("writing hf-tied", file=sys.stderr)
    manifest["models"]["hf-tied"] = {"format": "hf", "dtype": "f16", "tensors": write_hf(
        out / "hf-tied", sd_tied, tied=True, dtype=torch.float16, shard="1GB")}
    assert (out / "hf-tied" / "model.safetensors").exists()
    print("writing meta", file=sys.stderr)
    manifest["models"]["meta"] = {"format": "meta", "dtype": "bf16", "same_weights_as": "hf-untied",
                                  "tensors": write_meta(out / "meta", sd_untied, 1)}
    print("writing meta-mp2", file=sys.stderr)
    manifest["models"]["meta-mp2"] = {"format": "meta", "dtype": "bf16", "same_weights_as": "hf-untied",
                                      "tensors": write_meta(out / "meta-mp2", sd_untied, 2)}
    if not args.skip_gguf:
        print("writing gguf", file=sys.stderr)
        gguf_name = "llama31-tiny-bf16.gguf"
        digests, cmd = write_gguf(out / "hf-untied", out / gguf_name)
        manifest["models"]["gguf"] = {"format": "gguf", "file": gguf_name, "dtype": "bf16",
                                      "same_weights_as": "hf-untied", "command": " ".join(cmd),
                                      "converter": "llama-cpp-python==0.3.36 vendor/llama.cpp/convert_hf_to_gguf.py",
                                      "tensors": digests}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>12}  {p.relative_to(out)}")


if __name__ == "__main__":
    main()
