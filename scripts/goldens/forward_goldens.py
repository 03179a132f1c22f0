#!/usr/bin/env python3
"""Reference per-token NLLs for the tiny Llama 3.1 models (goldens/forward/).

Prerequisites (see scripts/setup-python.sh and scripts/make-tiny-models.py):

    bash scripts/setup-python.sh
    ~/.cache/llama31/venv/bin/python scripts/make-tiny-models.py --out ~/.cache/llama31/tiny
    ~/.cache/llama31/venv/bin/python scripts/goldens/forward_goldens.py [--make-texts]

--make-texts (re)writes goldens/forward/text_short.txt and text_long.txt from the MMLU and
HumanEval fixtures; without it the committed texts are used.

Perplexity protocol (the same as `llama31 perplexity`): tokens = [BOS 128000] +
tokenize(file bytes as-is, no special-token parsing); consecutive chunks of `ctx` tokens
(the last may be shorter); in each chunk, positions restart at 0 and every token after the
first is scored from the earlier tokens of the same chunk: nll[i] = -log softmax(logits[i])[tok[i+1]].
The nll list is all chunks' NLLs concatenated (ctx-1 per full chunk); ppl = exp(mean nll).

Reference: HF transformers LlamaForCausalLM in float32 (weights upcast from bf16/f16),
attn_implementation="eager", on CPU. Cross-check: Meta's llama_models/llama3/model.py
(Transformer, fairscale model-parallel size 1) on the Meta dir, float32, CPU.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
GOLD = REPO / "goldens" / "forward"
BOS = 128000
HEAD_BLOCK = 512  # rows of hidden states sent through the output head at a time

CASES = [("text_short.txt", 128), ("text_long.txt", 9000)]


# ---------------------------------------------------------------------------------------
# texts
def make_texts() -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(CACHE / "tokenizer.json"))
    rows = [json.loads(line) for line in (CACHE / "mmlu.jsonl").read_text().splitlines() if line.strip()]
    with gzip.open(CACHE / "HumanEval.jsonl.gz", "rt") as f:
        he = [json.loads(line) for line in f if line.strip()]

    def mmlu(i: int) -> str:
        r = rows[(i * 997) % len(rows)]
        return (
            f"Question ({r['topic']}): {r['question']}\n"
            f"A. {r['answer_a']}\nB. {r['answer_b']}\nC. {r['answer_c']}\nD. {r['answer_d']}\n"
            f"Answer: {r['correct_answer']}\n\n"
        )

    def ntok(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False).ids)

    short = ""
    i = 0
    while ntok(short) < 300:
        short += mmlu(i)
        i += 1
    long = ""
    j = 0
    while ntok(long) < 9700:
        long += mmlu(i) + mmlu(i + 1)
        i += 2
        h = he[(j * 7) % len(he)]
        long += h["prompt"] + h["canonical_solution"] + "\n\n"
        j += 1
    assert len(long.encode()) <= 60_000, len(long.encode())
    GOLD.mkdir(parents=True, exist_ok=True)
    (GOLD / "text_short.txt").write_bytes(short.encode())
    (GOLD / "text_long.txt").write_bytes(long.encode())
    print(f"text_short: {len(short.encode())} bytes {ntok(short)} tokens; "
          f"text_long: {len(long.encode())} bytes {ntok(long)} tokens", file=sys.stderr)


def tokenize(name: str) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(CACHE / "tokenizer.json"))
    text = (GOLD / name).read_bytes().decode("utf-8")
    return [BOS] + tok.encode(text, add_special_tokens=False).ids


def ids_sha256(ids: list[int]) -> str:
    return hashlib.sha256(np.asarray(ids, dtype="<u4").tobytes()).hexdigest()


def meta_tokenize(name: str) -> list[int] | None:
    """The same text through Meta's tiktoken tokenizer (llama_models/llama3/tokenizer.py)."""
    sys.path.insert(0, str(CACHE / "llama-models"))
    try:
        from llama_models.llama3.tokenizer import Tokenizer
    except ImportError as e:  # tiktoken missing
        print(f"skipping Meta tokenizer cross-check: {e}", file=sys.stderr)
        return None
    tok = Tokenizer(CACHE / "tokenizer.model")
    text = (GOLD / name).read_bytes().decode("utf-8")
    return tok.encode(text, bos=True, eos=False, allowed_special=set(), disallowed_special=())


def chunks(ids: list[int], ctx: int) -> list[list[int]]:
    return [ids[s : s + ctx] for s in range(0, len(ids), ctx)]


# ---------------------------------------------------------------------------------------
# scoring
def score_hidden(hidden: torch.Tensor, head_w: torch.Tensor, chunk: list[int], stats: dict) -> list[float]:
    """hidden: [n, dim] final-norm output (float32); head_w: [vocab, dim] float32."""
    n = len(chunk)
    out: list[float] = []
    for s in range(0, n - 1, HEAD_BLOCK):
        e = min(s + HEAD_BLOCK, n - 1)
        logits = hidden[s:e] @ head_w.T  # [b, vocab] float32
        lsm = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(chunk[s + 1 : e + 1])
        nll = -lsm.gather(1, tgt[:, None])[:, 0]
        out.extend(nll.double().tolist())
        stats["maxprob"].extend(lsm.max(dim=-1).values.exp().double().tolist())
        stats["top1"].extend((lsm.argmax(dim=-1) == tgt).double().tolist())
        if "top5" in stats and s == 0:
            v, i = logits[:8].topk(5, dim=-1)
            stats["top5"] = [[[int(a), round(float(b), 4)] for a, b in zip(ii, vv)] for ii, vv in zip(i, v)]
    return out


def hf_nll(model_dir: Path, ids: list[int], ctx: int, stats: dict) -> list[float]:
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    head_w = model.lm_head.weight.detach().float()
    assert head_w.dtype == torch.float32
    nll: list[float] = []
    with torch.inference_mode():
        for c in chunks(ids, ctx):
            if len(c) < 2:
                continue
            x = torch.tensor([c])
            pos = torch.arange(len(c))[None, :]
            h = model.model(input_ids=x, position_ids=pos, use_cache=False).last_hidden_state[0]
            nll.extend(score_hidden(h.float(), head_w, c, stats))
    return nll


def meta_nll(meta_dir: Path, ids: list[int], ctx: int) -> list[float]:
    sys.path.insert(0, str(CACHE / "llama-models"))
    import fairscale.nn.model_parallel.initialize as fs_init

    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            "gloo", init_method="file://" + tempfile.mktemp(prefix="llama31-dist-"), world_size=1, rank=0
        )
        fs_init.initialize_model_parallel(1)
    from llama_models.llama3.args import ModelArgs
    from llama_models.llama3.model import Transformer

    params = json.loads((meta_dir / "params.json").read_text())
    args = ModelArgs(max_seq_len=ctx, max_batch_size=1, **params)
    torch.set_default_dtype(torch.float32)
    model = Transformer(args)
    sd = torch.load(meta_dir / "consolidated.00.pth", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.eval()
    head_w = model.output.weight.detach().float()
    model.output = torch.nn.Identity()  # logits are computed in blocks by score_hidden
    nll: list[float] = []
    for c in chunks(ids, ctx):
        if len(c) < 2:
            continue
        h = model(torch.tensor([c]), 0)[0]  # start_pos 0: positions restart per chunk
        nll.extend(score_hidden(h.float(), head_w, c, {"maxprob": [], "top1": []}))
    return nll


def _mp_worker(rank: int, world: int, init_file: str, meta_dir: str, ids: list[int], ctx: int, out_file: str) -> None:
    """One model-parallel rank of Meta's Transformer, loading consolidated.<rank>.pth as Meta does."""
    torch.set_num_threads(1)
    sys.path.insert(0, str(CACHE / "llama-models"))
    import fairscale.nn.model_parallel.initialize as fs_init

    torch.distributed.init_process_group("gloo", init_method="file://" + init_file, world_size=world, rank=rank)
    fs_init.initialize_model_parallel(world)
    from llama_models.llama3.args import ModelArgs
    from llama_models.llama3.model import Transformer

    params = json.loads((Path(meta_dir) / "params.json").read_text())
    model = Transformer(ModelArgs(max_seq_len=ctx, max_batch_size=1, **params))
    sd = torch.load(Path(meta_dir) / f"consolidated.{rank:02d}.pth", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.eval()
    nll: list[float] = []
    for c in chunks(ids, ctx):
        if len(c) < 2:
            continue
        logits = model(torch.tensor([c]), 0)[0]  # output layer gathers the vocab shards
        lsm = torch.log_softmax(logits[:-1].float(), dim=-1)
        nll.extend((-lsm.gather(1, torch.tensor(c[1:])[:, None])[:, 0]).double().tolist())
    if rank == 0:
        Path(out_file).write_text(json.dumps(nll))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def meta_mp_nll(meta_dir: Path, ids: list[int], ctx: int, world: int) -> list[float]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="llama31-mp-") as d:
        out_file = str(Path(d) / "nll.json")
        mp.spawn(_mp_worker, args=(world, str(Path(d) / "init"), str(meta_dir), ids, ctx, out_file), nprocs=world)
        return json.loads(Path(out_file).read_text())


# ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", type=Path, default=CACHE / "tiny")
    ap.add_argument("--make-texts", action="store_true")
    ap.add_argument("--skip-meta", action="store_true")
    args = ap.parse_args()
    tiny = args.tiny.expanduser()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.make_texts:
        make_texts()

    manifest = json.loads((tiny / "manifest.json").read_text())
    import transformers

    result: dict = {
        "about": (
            "Reference per-token NLLs for the tiny random Llama 3.1 models made by scripts/make-tiny-models.py, "
            "computed by scripts/goldens/forward_goldens.py with HF transformers LlamaForCausalLM in float32 "
            "(eager attention, weights upcast from the stored bf16/f16), cross-checked against Meta's "
            "llama_models/llama3/model.py. The model files are NOT committed: CI regenerates them; "
            "'tensor_digests' is manifest.json's sha256 of every tensor's raw bytes per model, so a test "
            "can detect that regenerated files drifted from the ones these NLLs were computed on."
        ),
        "protocol": (
            "tokens = [128000] + tokenize(text file bytes as-is, no special-token parsing) with the Llama 3.1 "
            "tokenizer; consecutive chunks of ctx tokens (last may be shorter); positions restart at 0 in "
            "each chunk; every token after the first of a chunk is scored from the earlier tokens of the "
            "same chunk: nll = -log softmax(logits[i])[tok[i+1]]; 'nll' concatenates all chunks "
            "(len = tokens - number of chunks); ppl = exp(mean(nll)). NLLs rounded to 6 decimals."
        ),
        "tolerance": 2e-3,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
        "same_nll_as": {"meta": "hf-untied", "meta-mp2": "hf-untied", "gguf": "hf-untied"},
        "files": {"gguf": manifest["models"].get("gguf", {}).get("file"),
                  "gguf_command": manifest["models"].get("gguf", {}).get("command")},
        "cases": [],
        "stats": {},
        "cross_check": {},
        "tensor_digests": {k: v["tensors"] for k, v in manifest["models"].items()},
    }
    token_cache = {name: tokenize(name) for name, _ in CASES}
    for name, _ in CASES:
        data = (GOLD / name).read_bytes()
        ids = token_cache[name]
        meta_ids = meta_tokenize(name)
        if meta_ids is not None:
            assert meta_ids == ids, f"HF tokenizer.json and Meta tiktoken disagree on {name}"
        result["stats"][name] = {
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "tokens_with_bos": len(ids),
            "token_ids_sha256_u32le": ids_sha256(ids),
            "first_ids": ids[:16], "last_ids": ids[-16:],
            "meta_tiktoken_checked_equal": meta_ids is not None,
        }
    logits_short = None
    hf_results: dict[tuple[str, str], list[float]] = {}
    for model_name in ["hf-untied", "hf-tied"]:
        for name, ctx in CASES:
            ids = token_cache[name]
            stats: dict = {"maxprob": [], "top1": []}
            want_top5 = model_name == "hf-untied" and name == "text_short.txt"
            if want_top5:
                stats["top5"] = None
            t0 = time.time()
            nll = hf_nll(tiny / model_name, ids, ctx, stats)
            dt = time.time() - t0
            n_chunks = len(chunks(ids, ctx))
            assert len(nll) == len(ids) - n_chunks, (len(nll), len(ids), n_chunks)
            hf_results[(model_name, name)] = nll
            mean = float(np.mean(nll))
            s = {
                "mean_nll": round(mean, 6), "ppl": round(math.exp(mean), 4),
                "mean_max_prob": round(float(np.mean(stats["maxprob"])), 4),
                "top1_acc": round(float(np.mean(stats["top1"])), 4),
                "min_nll": round(float(np.min(nll)), 6), "max_nll": round(float(np.max(nll)), 6),
                "log_vocab": round(math.log(128256), 4), "seconds": round(dt, 1),
            }
            print(f"{model_name} {name} ctx={ctx} tokens={len(ids)} chunks={n_chunks} {s}", file=sys.stderr)
            result["stats"][f"{model_name}/{name}/{ctx}"] = s
            result["cases"].append({
                "model": model_name, "text": name, "ctx": ctx, "tokens": len(ids),
                "chunks": [len(c) for c in chunks(ids, ctx)],
                "nll": [round(x, 6) for x in nll], "ppl": round(math.exp(mean), 6),
            })
            if want_top5:
                logits_short = {
                    "about": "hf-untied, text_short.txt, first chunk: top-5 (token id, float32 logit) at positions "
                    "0..7 (HF transformers float32, eager). Rounded to 4 decimals; for debugging.",
                    "tokens": ids[:9], "top5": stats["top5"],
                }
    if not args.skip_meta:
        for name, ctx in CASES:
            t0 = time.time()
            mnll = meta_nll(tiny / "meta", token_cache[name], ctx)
            ref = hf_results[("hf-untied", name)]
            d = float(np.max(np.abs(np.array(mnll) - np.array(ref))))
            result["cross_check"][f"{name}/{ctx}"] = {
                "meta_model_py_vs_hf_max_abs_dnll": float(f"{d:.3g}"),
                "meta_mean_nll": round(float(np.mean(mnll)), 6),
                "seconds": round(time.time() - t0, 1),
            }
            print(f"cross-check meta vs hf {name} ctx={ctx}: max |dNLL| = {d:.3g}", file=sys.stderr)
        # meta-mp2 through Meta's code at model-parallel size 2 (fairscale shards, gloo): short text only
        name, ctx = CASES[0]
        t0 = time.time()
        mnll = meta_mp_nll(tiny / "meta-mp2", token_cache[name], ctx, 2)
        d = float(np.max(np.abs(np.array(mnll) - np.array(hf_results[("hf-untied", name)]))))
        result["cross_check"][f"meta-mp2/{name}/{ctx}"] = {
            "meta_model_py_mp2_vs_hf_max_abs_dnll": float(f"{d:.3g}"),
            "seconds": round(time.time() - t0, 1),
        }
        print(f"cross-check meta-mp2 (model parallel 2) vs hf {name} ctx={ctx}: max |dNLL| = {d:.3g}", file=sys.stderr)
    # one line per NLL list keeps the file small and diffable
    lists = {}
    for i, c in enumerate(result["cases"]):
        lists[f"@@NLL{i}@@"] = json.dumps(c["nll"], separators=(",", ":"))
        c["nll"] = f"@@NLL{i}@@"
    text = json.dumps(result, indent=1)
    for k, v in lists.items():
        text = text.replace(f'"{k}"', v)
    (GOLD / "nll.json").write_text(text + "\n")
    if logits_short is not None:
        (GOLD / "logits_short.json").write_text(json.dumps(logits_short, indent=1) + "\n")
    print(f"wrote {GOLD / 'nll.json'} ({(GOLD / 'nll.json').stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
