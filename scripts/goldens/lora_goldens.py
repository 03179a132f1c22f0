#!/usr/bin/env python3
"""Reference goldens for LoRA adapters on the tiny random Llama 3.1 model (goldens/lora/).

Prerequisites: the tiny models (scripts/setup-python.sh --tiny), PEFT in the tiny-model venv,
and the goldens venv with llama-cpp-python 0.3.36 (scripts/goldens/setup-venv-goldens.sh):

    ~/.cache/llama31/venv/bin/python -m pip install -r scripts/goldens/requirements-lora.txt
    ~/.cache/llama31/venv/bin/python scripts/goldens/lora_goldens.py

What it does (all seeded, CPU, float32):

 1. Makes three PEFT LoRA adapters for `hf-untied` with `get_peft_model(LoraConfig(...))`,
    overwrites every lora_A / lora_B with seeded normal values (PEFT's own init has B = 0, a
    no-op) and saves them with `save_pretrained` (safetensors, float32) to goldens/lora/<name>/.
 2. Per-token NLL on goldens/forward/text_short.txt, ctx 128, with the protocol of
    forward_goldens.py (imported from it): base, each adapter unmerged through
    `PeftModel.from_pretrained`, and merged (`merge_and_unload()`).
 3. Converts each adapter with llama.cpp's own convert_lora_to_gguf.py (from the
    llama-cpp-python 0.3.36 sdist, unpacked into $LLAMA31_CACHE/llama.cpp-src next to
    convert_hf_to_gguf.py if missing) to goldens/lora/<name>.gguf (--outtype f32) and dumps
    its metadata and tensor list to goldens/lora/gguf_<name>.json.
 4. Runs itself as `lora_goldens.py llamacpp <job.json> <out.json>` under the goldens venv:
    llama-cpp-python on the tiny BF16 GGUF with and without each GGUF adapter, same protocol.
 5. Writes goldens/lora/nll.json.

`--skip-llamacpp` leaves the llama.cpp numbers null.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# adapter_config.json names the base "hf-untied" (see load_base); never look that up on the Hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = REPO / "goldens" / "lora"
TEXT = "text_short.txt"
CTX = 128
LCP_VERSION = "0.3.36"
SRC = CACHE / "llama.cpp-src"
VENV_PY = CACHE / "venv" / "bin" / "python"
GOLDENS_PY = CACHE / "venv-goldens" / "bin" / "python"
BOS = 128000

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name -> (LoraConfig kwargs, seed, std of B entries). A entries are N(0, 1/in_features) so
# A @ x has unit-ish scale; B entries are N(0, b_std^2). The b_std values were picked once so
# that each adapter moves the mean NLL on text_short.txt by ~0.05-0.5 nats.
ADAPTERS: dict[str, tuple[dict, int, float]] = {
    "peft-r8": (dict(r=8, lora_alpha=16, target_modules=ALL7), 1001, 0.006),
    "peft-rslora": (
        dict(r=8, lora_alpha=16, target_modules=ALL7, use_rslora=True,
             rank_pattern={"q_proj": 4, "layers.1.mlp.down_proj": 16}, alpha_pattern={"v_proj": 24}),
        1002, 0.002),
    "peft-qv-layer1": (dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], layers_to_transform=[1]),
                       1003, 0.03),
}


def fwd():
    sys.path.insert(0, str(HERE))
    import forward_goldens

    return forward_goldens


# ---------------------------------------------------------------------------------------
# llama.cpp converter
def ensure_lora_converter() -> Path:
    """Unpack vendor/llama.cpp/convert_lora_to_gguf.py of the llama-cpp-python sdist into SRC (idempotent)."""
    conv = SRC / "convert_lora_to_gguf.py"
    if conv.exists():
        return conv
    if not (SRC / "convert_hf_to_gguf.py").exists():
        sys.exit(f"{SRC}/convert_hf_to_gguf.py missing: run scripts/setup-python.sh first")
    with tempfile.TemporaryDirectory(prefix="lcp-sdist-") as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                        "llama-cpp-python", "-d", d, f"llama-cpp-python=={LCP_VERSION}"], check=True)
        member = f"llama_cpp_python-{LCP_VERSION}/vendor/llama.cpp/convert_lora_to_gguf.py"
        with tarfile.open(Path(d) / f"llama_cpp_python-{LCP_VERSION}.tar.gz") as tf:
            data = tf.extractfile(member).read()
    tmp = conv.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(conv)
    print(f"unpacked {conv}", file=sys.stderr)
    return conv


def convert(conv: Path, base: Path, adapter_dir: Path, out: Path) -> dict:
    cmd = [str(VENV_PY), str(conv), "--base", str(base), "--outtype", "f32", "--outfile", str(out), str(adapter_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    log = (r.stdout + r.stderr).strip().splitlines()
    print("\n".join(log[-4:]), file=sys.stderr)
    if r.returncode != 0:
        print("\n".join(log), file=sys.stderr)
    return {"returncode": r.returncode,
            "command": f"python convert_lora_to_gguf.py --base <tiny>/hf-untied --outtype f32 "
                       f"--outfile goldens/lora/{out.name} goldens/lora/{adapter_dir.name}"}


def dump_gguf(path: Path) -> dict:
    sys.path.insert(0, str(SRC / "gguf-py"))
    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    rd = GGUFReader(str(path))
    meta = {}
    for name, f in rd.fields.items():
        if name.startswith("GGUF."):
            continue
        t = GGUFValueType(f.types[0]).name
        v = f.contents()
        if isinstance(v, float):
            v = float(np.float32(v))
        meta[name] = {"type": t if t != "ARRAY" else f"ARRAY[{GGUFValueType(f.types[-1]).name}]", "value": v}
    tensors = []
    for t in rd.tensors:
        arr = np.asarray(t.data)
        tensors.append({
            "name": t.name, "ggml_type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
            "numpy_shape": list(arr.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
        })
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "gguf_version": int(rd.fields["GGUF.version"].contents()), "metadata": meta, "tensors": tensors}


HF2GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down"}


def check_gguf_layout(gguf_path: Path, adapter_dir: Path, base_config: Path) -> str:
    """Asserts how the converter laid out every tensor: lora_a = PEFT lora_A and lora_b = PEFT lora_B
    bit for bit, except q/k lora_b whose rows get convert_hf_to_gguf's RoPE permutation
    (LlamaModel.permute: reshape(n_head, 2, head_dim/2, r).swapaxes(1, 2)), n_head 4 for q, 2 for k."""
    sys.path.insert(0, str(SRC / "gguf-py"))
    import numpy as np
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    cfg = json.loads(base_config.read_text())
    st = load_file(str(adapter_dir / "adapter_model.safetensors"))
    got = {t.name: np.asarray(t.data) for t in GGUFReader(str(gguf_path)).tensors}
    want = {}
    for k, v in st.items():
        parts = k.split(".")  # base_model.model.model.layers.N.<blk>.<proj>.lora_X.weight
        bid, mod, ab = parts[4], f"{parts[5]}.{parts[6]}", parts[7]
        if ab == "lora_B" and mod in ("self_attn.q_proj", "self_attn.k_proj"):
            nh = cfg["num_attention_heads"] if mod.endswith("q_proj") else cfg["num_key_value_heads"]
            v = v.reshape(nh, 2, v.shape[0] // nh // 2, v.shape[1]).swapaxes(1, 2).reshape(v.shape)
        want[f"blk.{bid}.{HF2GGUF[mod]}.weight.{ab.lower()}"] = v
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        assert got[k].dtype == np.float32 and np.array_equal(got[k], want[k]), k
    return ("every lora_a == PEFT lora_A [r, in] and lora_b == PEFT lora_B [out, r] bit for bit, except q/k lora_b "
            "rows permuted like convert_hf_to_gguf permutes q/k weights (n_head 4 for q, n_head_kv 2 for k)")


# ---------------------------------------------------------------------------------------
# HF / PEFT side
def load_base(tiny: Path):
    import torch
    from transformers import LlamaForCausalLM

    m = LlamaForCausalLM.from_pretrained(tiny / "hf-untied", dtype=torch.float32, attn_implementation="eager")
    # PEFT records model.name_or_path as adapter_config.json's base_model_name_or_path: keep it a
    # portable name instead of this machine's absolute path (convert_lora_to_gguf.py gets --base).
    m.config._name_or_path = "hf-untied"
    m.name_or_path = "hf-untied"
    m.eval()
    return m


def model_nll(llama, ids: list[int], ctx: int) -> list[float]:
    """forward_goldens.hf_nll's loop on an already built LlamaForCausalLM (PEFT layers injected or merged)."""
    import torch

    fg = fwd()
    head_w = llama.lm_head.weight.detach().float()
    nll: list[float] = []
    with torch.inference_mode():
        for c in fg.chunks(ids, ctx):
            if len(c) < 2:
                continue
            h = llama.model(input_ids=torch.tensor([c]), position_ids=torch.arange(len(c))[None, :],
                            use_cache=False).last_hidden_state[0]
            nll.extend(fg.score_hidden(h.float(), head_w, c, {"maxprob": [], "top1": []}))
    return nll


def make_adapter(tiny: Path, name: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    kwargs, seed, b_std = ADAPTERS[name]
    torch.manual_seed(seed)
    base = load_base(tiny)
    pm = get_peft_model(base, LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **kwargs))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mname, mod in sorted(pm.named_modules(), key=lambda kv: kv[0]):
            if not isinstance(mod, LoraLayer) or "default" not in mod.lora_A:
                continue
            A = mod.lora_A["default"].weight  # [r, in]
            B = mod.lora_B["default"].weight  # [out, r]
            A.copy_(torch.randn(A.shape, generator=g, dtype=torch.float32) / math.sqrt(A.shape[1]))
            B.copy_(torch.randn(B.shape, generator=g, dtype=torch.float32) * b_std)
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    pm.save_pretrained(d, safe_serialization=True)
    # check what was written
    cfg = json.loads((d / "adapter_config.json").read_text())
    for k, v in kwargs.items():
        got = cfg[k]
        if isinstance(v, list) and k == "target_modules":
            assert sorted(got) == sorted(v), (k, got, v)
        else:
            assert got == v, (k, got, v)
    assert cfg["peft_type"] == "LORA" and cfg["base_model_name_or_path"] == "hf-untied", cfg
    from safetensors import safe_open

    with safe_open(d / "adapter_model.safetensors", "pt") as f:
        keys = sorted(f.keys())
        for k in keys:
            assert f.get_tensor(k).dtype == torch.float32, k
    layers = kwargs.get("layers_to_transform", [0, 1])
    want = sorted(
        f"base_model.model.model.layers.{l}.{'self_attn' if m in ('q_proj', 'k_proj', 'v_proj', 'o_proj') else 'mlp'}.{m}.lora_{ab}.weight"
        for l in layers for m in kwargs["target_modules"] for ab in "AB")
    assert keys == want, (keys, want)


def peft_module_info(pm) -> dict:
    from peft.tuners.lora import LoraLayer

    out = {}
    for mname, mod in pm.named_modules():
        if isinstance(mod, LoraLayer) and "default" in mod.lora_A:
            key = mname.replace("base_model.model.", "", 1)
            out[key] = {"scaling": float(mod.scaling["default"]), "r": int(mod.r["default"]),
                        "lora_alpha": float(mod.lora_alpha["default"])}
    return dict(sorted(out.items(), key=lambda kv: natural(kv[0])))


def natural(s: str):
    return [int(t) if t.isdigit() else t for t in s.replace(".", " . ").split()]


def peft_results(tiny: Path, name: str, ids: list[int], gguf_alpha: float | None) -> dict:
    import torch
    from peft import PeftModel

    d = OUT / name
    pm = PeftModel.from_pretrained(load_base(tiny), d)
    pm.eval()
    info = peft_module_info(pm)
    unmerged = model_nll(pm.get_base_model(), ids, CTX)
    res: dict = {
        "scale_per_module": {k: v["scaling"] for k, v in info.items()},
        "rank_per_module": {k: v["r"] for k, v in info.items()},
        "alpha_per_module": {k: v["lora_alpha"] for k, v in info.items()},
    }
    # what llama.cpp applies: scale = adapter.lora.alpha / rank, rank = lora_b->ne[0], one alpha per file
    if gguf_alpha is not None:
        ll = {k: gguf_alpha / v["r"] for k, v in info.items()}
        res["llamacpp_scale_per_module"] = ll
        differs = any(abs(ll[k] - info[k]["scaling"]) > 1e-12 * max(1.0, abs(ll[k])) for k in ll)
        res["llamacpp_scale_differs_from_peft"] = differs
    merged_model = pm.merge_and_unload()
    merged = model_nll(merged_model, ids, CTX)
    res["peft_unmerged"] = unmerged
    res["peft_merged"] = merged
    res["max_merged_vs_unmerged"] = max(abs(a - b) for a, b in zip(unmerged, merged))
    # PEFT with llama.cpp's per-module scale (isolates the scale convention from arithmetic differences)
    if gguf_alpha is not None and res["llamacpp_scale_differs_from_peft"]:
        pm2 = PeftModel.from_pretrained(load_base(tiny), d)
        pm2.eval()
        from peft.tuners.lora import LoraLayer

        for mname, mod in pm2.named_modules():
            if isinstance(mod, LoraLayer) and "default" in mod.lora_A:
                mod.scaling["default"] = gguf_alpha / mod.r["default"]
        res["peft_unmerged_with_llamacpp_scales"] = model_nll(pm2.get_base_model(), ids, CTX)
    return res


# ---------------------------------------------------------------------------------------
# llama.cpp side (runs under the goldens venv; numpy + llama_cpp only)
def llamacpp_nll(model: str, lora: str | None, ids: list[int], ctx: int,
                 text: bytes = b"") -> tuple[list[float], list[int]]:
    """Per-token NLL of `ids` (chunks of `ctx`, as forward_goldens.py) by llama-cpp-python on `model`
    (with the GGUF adapter `lora`), and its own tokenization of `text` for comparison."""
    import numpy as np
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model, lora_path=lora, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx,
                          logits_all=True, n_threads=2, n_gpu_layers=0, type_k=0, type_v=0,
                          flash_attn=False, seed=0, verbose=False)
    toks = llm.tokenize(text, add_bos=True, special=False) if text else []
    nll: list[float] = []
    for s in range(0, len(ids), ctx):
        c = ids[s : s + ctx]
        if len(c) < 2:
            continue
        llm.reset()
        llm.eval(c)
        lg = np.array(llm.scores[: len(c) - 1], dtype=np.float64)
        mx = lg.max(axis=1)
        lse = mx + np.log(np.exp(lg - mx[:, None]).sum(axis=1))
        nll.extend((lse - lg[np.arange(len(c) - 1), c[1:]]).tolist())
    llm.close()
    return nll, toks


def llamacpp_main(job_file: str, out_file: str) -> None:
    import llama_cpp

    job = json.loads(Path(job_file).read_text())
    ids, ctx, text = job["ids"], job["ctx"], Path(job["text"]).read_bytes()

    def run(model: str, lora: str | None) -> tuple[list[float], list[int]]:
        return llamacpp_nll(model, lora, ids, ctx, text)

    out: dict = {"llama_cpp": llama_cpp.__version__, "models": {}}
    for key, model in job["models"].items():
        nll, toks = run(model, None)
        r = {"tokens_equal_hf": toks == ids, "base": nll, "adapters": {}}
        for name, path in job["adapters"].items():
            t0 = time.time()
            r["adapters"][name] = run(model, path)[0]
            print(f"llama.cpp {key} {name}: {time.time() - t0:.1f}s", file=sys.stderr)
        out["models"][key] = r
    Path(out_file).write_text(json.dumps(out))


def diff_stats(a: list[float], b: list[float]) -> dict:
    d = [abs(x - y) for x, y in zip(a, b)]
    assert len(a) == len(b)
    return {"max_abs": max(d), "mean_abs": sum(d) / len(d)}


# ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="*", help="(internal) llamacpp JOB OUT")
    ap.add_argument("--tiny", type=Path, default=CACHE / "tiny")
    ap.add_argument("--skip-llamacpp", action="store_true")
    args = ap.parse_args()
    if args.mode:
        assert args.mode[0] == "llamacpp" and len(args.mode) == 3, args.mode
        llamacpp_main(args.mode[1], args.mode[2])
        return

    if os.environ.get("PYTHONHASHSEED") != "0":
        # PEFT stores target_modules as a set: its order in adapter_config.json follows string hashing
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

    import numpy as np
    import torch
    import transformers
    import peft

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    tiny = args.tiny.expanduser()
    fg = fwd()
    ids = fg.tokenize(TEXT)
    OUT.mkdir(parents=True, exist_ok=True)

    # base: forward_goldens.hf_nll itself, our loop, and goldens/forward/nll.json
    base = fg.hf_nll(tiny / "hf-untied", ids, CTX, {"maxprob": [], "top1": []})
    base_loop = model_nll(load_base(tiny), ids, CTX)
    assert base == base_loop, "model_nll differs from forward_goldens.hf_nll on the base"
    base_check: dict = {"forward_nll_json_case_found": False}
    fwd_json = REPO / "goldens" / "forward" / "nll.json"
    if fwd_json.exists():
        for case in json.loads(fwd_json.read_text())["cases"]:
            if case["model"] == "hf-untied" and case["text"] == TEXT and case["ctx"] == CTX:
                d = max(abs(a - b) for a, b in zip(case["nll"], base))
                assert len(case["nll"]) == len(base) and d < 2e-4, d  # float32 summation order differs by machine/threads
                base_check = {"forward_nll_json_case_found": True, "max_abs_vs_forward_nll_json_rounded6": d}
    print(f"base mean nll {np.mean(base):.6f} {base_check}", file=sys.stderr)

    conv = ensure_lora_converter()
    adapters: dict = {}
    gguf_paths: dict = {}
    for name in ADAPTERS:
        t0 = time.time()
        make_adapter(tiny, name)
        gg = OUT / f"{name}.gguf"
        gg.unlink(missing_ok=True)
        conv_res = convert(conv, tiny / "hf-untied", OUT / name, gg)
        alpha = None
        if conv_res["returncode"] == 0 and gg.exists():
            dump = dump_gguf(gg)
            dump["layout_check"] = check_gguf_layout(gg, OUT / name, tiny / "hf-untied" / "config.json")
            (OUT / f"gguf_{name}.json").write_text(json.dumps(dump, indent=1) + "\n")
            alpha = dump["metadata"]["adapter.lora.alpha"]["value"]
            gguf_paths[name] = str(gg)
        res = peft_results(tiny, name, ids, alpha)
        mean_d = float(np.mean(np.abs(np.array(res["peft_unmerged"]) - np.array(base))))
        dmean = float(np.mean(res["peft_unmerged"]) - np.mean(base))
        adapters[name] = {
            "config": ADAPTERS[name][0], "seed": ADAPTERS[name][1], "b_std": ADAPTERS[name][2],
            "converter": {**conv_res, "gguf": gg.name if name in gguf_paths else None,
                          "gguf_lora_alpha": alpha},
            **res,
            "mean_abs_vs_base": mean_d, "mean_nll_minus_base": dmean,
            "llamacpp_gguf": None, "llamacpp_vs_peft": None,
        }
        assert all(math.isfinite(x) for x in res["peft_unmerged"] + res["peft_merged"])
        print(f"{name}: mean|d| vs base {mean_d:.4f}, d mean {dmean:+.4f}, merged-vs-unmerged "
              f"{res['max_merged_vs_unmerged']:.3g} ({time.time() - t0:.1f}s)", file=sys.stderr)

    llamacpp_info: dict = {"ran": False}
    if not args.skip_llamacpp:
        with tempfile.TemporaryDirectory(prefix="lora-goldens-") as d:
            # the same weights as the BF16 GGUF (bf16 -> f32 is exact), so llama.cpp computes in f32 and the
            # cross-check is not swamped by its bf16 rounding of activations in BF16 matmuls
            f32 = Path(d) / "llama31-tiny-f32.gguf"
            subprocess.run([str(VENV_PY), str(SRC / "convert_hf_to_gguf.py"), str(tiny / "hf-untied"), "--outtype",
                            "f32", "--outfile", str(f32)], check=True, capture_output=True)
            job = {"ids": ids, "ctx": CTX, "text": str(REPO / "goldens" / "forward" / TEXT),
                   "models": {"bf16": str(tiny / "llama31-tiny-bf16.gguf"), "f32": str(f32)}, "adapters": gguf_paths}
            (Path(d) / "job.json").write_text(json.dumps(job))
            subprocess.run([str(GOLDENS_PY), str(Path(__file__).resolve()), "llamacpp",
                            str(Path(d) / "job.json"), str(Path(d) / "out.json")], check=True)
            lc = json.loads((Path(d) / "out.json").read_text())
        for key, r in lc["models"].items():
            assert r["tokens_equal_hf"], f"llama.cpp tokenization ({key}) differs from HF tokenizer.json"
        llamacpp_info = {
            "ran": True, "llama_cpp": lc["llama_cpp"], "tokens_equal_hf": True,
            "models": {"bf16": "~/.cache/llama31/tiny/llama31-tiny-bf16.gguf (convert_hf_to_gguf.py --outtype bf16)",
                       "f32": "temporary: convert_hf_to_gguf.py hf-untied --outtype f32 (same weights, not kept)"},
            "settings": "Llama(model_path=<model>, lora_path=<name>.gguf, lora_scale=1.0, n_ctx=128, n_batch=128, "
                        "n_ubatch=128, logits_all=True, n_threads=2, n_gpu_layers=0, type_k=0, type_v=0 (F32 KV "
                        "cache), flash_attn=False); per chunk reset() + eval(chunk); nll from llm.scores in float64",
            "about_diffs": "x_vs_peft: |llama.cpp nll - PEFT unmerged nll| per token; x_delta_vs_peft_delta: "
                           "|(llama.cpp adapter - llama.cpp base) - (PEFT unmerged - HF base)| per token, i.e. the "
                           "adapter's effect compared with the base's own llama.cpp-vs-HF difference removed",
            "base_nll_bf16": lc["models"]["bf16"]["base"], "base_nll_f32": lc["models"]["f32"]["base"],
            "base_bf16_vs_hf": diff_stats(lc["models"]["bf16"]["base"], base),
            "base_f32_vs_hf": diff_stats(lc["models"]["f32"]["base"], base),
        }
        for name in gguf_paths:
            a = adapters[name]
            refs = {"peft": a["peft_unmerged"]}
            if "peft_unmerged_with_llamacpp_scales" in a:
                refs["peft_with_llamacpp_scales"] = a["peft_unmerged_with_llamacpp_scales"]
            a["llamacpp_gguf"] = lc["models"]["bf16"]["adapters"][name]
            a["llamacpp_gguf_f32_base"] = lc["models"]["f32"]["adapters"][name]
            a["llamacpp_vs_peft"] = {}
            for key, field in (("bf16", "llamacpp_gguf"), ("f32", "llamacpp_gguf_f32_base")):
                lb = lc["models"][key]["base"]
                for rk, ref in refs.items():
                    a["llamacpp_vs_peft"][f"{key}_vs_{rk}"] = diff_stats(a[field], ref)
                    a["llamacpp_vs_peft"][f"{key}_delta_vs_{rk}_delta"] = diff_stats(
                        [x - y for x, y in zip(a[field], lb)], [x - y for x, y in zip(ref, base)])
            for k, v in a["llamacpp_vs_peft"].items():
                print(f"{name}: llama.cpp {k}: max {v['max_abs']:.3g} mean {v['mean_abs']:.3g}", file=sys.stderr)
        print(f"llama.cpp base vs HF: bf16 {llamacpp_info['base_bf16_vs_hf']} f32 {llamacpp_info['base_f32_vs_hf']}",
              file=sys.stderr)

    result = {
        "about": "LoRA reference NLLs for the tiny random Llama 3.1 model hf-untied (scripts/goldens/lora_goldens.py; "
                 "see scripts/goldens/README.md, section 'LoRA adapters'). peft_unmerged: PeftModel.from_pretrained on "
                 "the float32 base; peft_merged: the same after merge_and_unload(); llamacpp_gguf: llama-cpp-python on "
                 "the BF16 GGUF of hf-untied with the adapter GGUF written by llama.cpp's convert_lora_to_gguf.py. "
                 "NLLs are full precision (float64 repr of the float32 computation).",
        "protocol": "forward_goldens.py's: tokens = [128000] + tokenize(text bytes, no special parsing); chunks of ctx "
                    "tokens; positions restart per chunk; nll[i] = -log softmax(logits[i])[tok[i+1]] within the chunk",
        "text": TEXT, "ctx": CTX, "tokens": ids,
        "base": {"nll": base, "mean": float(np.mean(base)), **base_check},
        "adapters": adapters,
        "llamacpp": llamacpp_info,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "llama_cpp": llamacpp_info.get("llama_cpp"), "numpy": np.__version__,
                     "convert_lora_to_gguf": f"llama-cpp-python {LCP_VERSION} sdist vendor/llama.cpp"},
    }
    (OUT / "nll.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}/nll.json", file=sys.stderr)


if __name__ == "__main__":
    main()
