#!/usr/bin/env python3
"""SmolLM2 greedy goldens from llama.cpp on the Q4_1 weights dequantized to F32 (near-exact arithmetic).

Why: `smollm2_greedy.jsonl` is llama.cpp on the Q4_1 GGUF, where llama.cpp quantizes the activations to
8 bits for every Q4_1/Q8_0 matmul and keeps the KV cache in F16. An engine that dequantizes the weights to
f32 and computes in f32 follows a different greedy path at low-margin steps. This script gives a reference
on the SAME weights computed in f32 throughout:

1. Dequantizes every tensor of `SmolLM2-135M-Instruct.Q4_1.gguf` to F32 with llama.cpp's own gguf-py
   (`gguf.GGUFReader` + `gguf.quants.dequantize`) and writes `SmolLM2-135M-Instruct.F32.gguf` next to it
   (`gguf.GGUFWriter`; all metadata copied, `general.file_type = ALL_F32`).
2. Runs llama-cpp-python 0.3.36 on it with an F32 KV cache (`type_k = type_v = GGML_TYPE_F32`), flash
   attention off, and the same protocol as `llamacpp_goldens.py` (prompt in one batch, then one token at a
   time, argmax of `llama_get_logits_ith(ctx, -1)`, 32 tokens or up to and including an EOG id).

Writes:
  ~/.cache/llama31/SmolLM2-135M-Instruct.F32.gguf     (not committed; ~540 MB)
  goldens/generation/smollm2_f32_greedy.jsonl          same prompts/fields as smollm2_greedy.jsonl + reference, settings
  goldens/generation/smollm2_f32_logits.json           top-10 (id, logit) at the last prompt position, 2 prompts

Run with the goldens venv: ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/smollm2_f32.py
(`--force-convert` rewrites the F32 GGUF even if it exists.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
GGUF_PY = CACHE / "llama.cpp-src" / "gguf-py"  # from the llama-cpp-python 0.3.36 sdist (vendor/llama.cpp/gguf-py)
sys.path.insert(0, str(GGUF_PY))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gguf  # noqa: E402
import llama_cpp  # noqa: E402
from llamacpp_goldens import GEN_DIR, greedy, is_eog, last_logits  # noqa: E402

SRC = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
DST = CACHE / "SmolLM2-135M-Instruct.F32.gguf"
REFERENCE = "llama.cpp 0.3.36 on SmolLM2 Q4_1 dequantized to F32 by gguf-py"
GGML_TYPE_F32 = 0
SETTINGS = {"n_ctx": 2048, "n_threads": 2, "n_batch": 512, "n_ubatch": 512, "logits_all": False,
            "type_k": GGML_TYPE_F32, "type_v": GGML_TYPE_F32, "flash_attn": False, "n_gpu_layers": 0,
            "add_bos": True, "special": True, "weights": "F32 (gguf-py dequantize of Q4_1/Q8_0; norms were F32)"}


def _load_converter():
    """scripts/make-smollm2-f32.py (the setup step that writes the same F32 GGUF for CI) owns `convert`."""
    import importlib.util
    path = Path(__file__).resolve().parent.parent / "make-smollm2-f32.py"
    spec = importlib.util.spec_from_file_location("make_smollm2_f32", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def convert(src: Path = SRC, dst: Path = DST) -> dict:
    """Dequantize every tensor of `src` to F32 and write `dst` with the same metadata (file_type ALL_F32)."""
    return _load_converter().convert(src, dst)


def verify_converted(src: Path = SRC, dst: Path = DST) -> None:
    """Metadata identical except general.file_type; every tensor F32, same names/shapes, values = dequantize(src)."""
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    fa = {f.name: f.contents() for f in a.fields.values() if not f.name.startswith("GGUF.")}
    fb = {f.name: f.contents() for f in b.fields.values() if not f.name.startswith("GGUF.")}
    assert fb.pop(gguf.Keys.General.FILE_TYPE) == int(gguf.LlamaFileType.ALL_F32)
    fa.pop(gguf.Keys.General.FILE_TYPE)
    assert fa == fb, sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert tb.tensor_type == gguf.GGMLQuantizationType.F32, tb.name
        assert list(ta.shape) == list(tb.shape), tb.name
        want = gguf.quants.dequantize(ta.data, ta.tensor_type)
        assert np.array_equal(want.reshape(-1), np.asarray(tb.data).reshape(-1)), tb.name


def make_llm() -> llama_cpp.Llama:
    llm = llama_cpp.Llama(model_path=str(DST), n_ctx=SETTINGS["n_ctx"], n_threads=SETTINGS["n_threads"],
                          n_batch=SETTINGS["n_batch"], n_ubatch=SETTINGS["n_ubatch"], logits_all=False,
                          type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, flash_attn=False, n_gpu_layers=0,
                          verbose=False, seed=0)
    cp = llm.context_params
    assert (cp.type_k, cp.type_v, cp.flash_attn_type) == (GGML_TYPE_F32, GGML_TYPE_F32,
                                                         llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    ftype = llm.metadata.get("general.file_type")
    assert ftype == "0", ftype
    return llm


class F64Llama:
    """Independent float64 numpy forward pass of the llama architecture on the F32 GGUF's weights (no KV cache:
    the whole sequence is evaluated at once, causal mask). Used only to check how exact llama.cpp's F32 run is."""

    def __init__(self, path: Path = DST):
        r = gguf.GGUFReader(path)
        kv = {f.name: f.contents() for f in r.fields.values()}
        self.n_layer = int(kv["llama.block_count"])
        self.n_head = int(kv["llama.attention.head_count"])
        self.n_kv = int(kv["llama.attention.head_count_kv"])
        self.eps = float(kv["llama.attention.layer_norm_rms_epsilon"])
        self.base = float(kv["llama.rope.freq_base"])
        self.w = {t.name: np.asarray(t.data, dtype=np.float64) for t in r.tensors}
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])  # tied embeddings
        self.hd = self.w["blk.0.attn_q.weight"].shape[0] // self.n_head
        assert int(kv["llama.rope.dimension_count"]) == self.hd

    def _norm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def _rope(self, x: np.ndarray) -> np.ndarray:
        # llama.cpp LLAMA_ROPE_TYPE_NORM: rotate adjacent pairs (convert_hf_to_gguf permuted q/k for this).
        n, h, d = x.shape
        theta = self.base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = np.arange(n, dtype=np.float64)[:, None] * theta[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * cos - x1 * sin
        y[..., 1::2] = x0 * sin + x1 * cos
        return y

    def logits(self, ids: list[int]) -> np.ndarray:
        w, n, hd = self.w, len(ids), self.hd
        x = w["token_embd.weight"][ids]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        group = self.n_head // self.n_kv
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = self._norm(x, w[p + "attn_norm.weight"])
            q = self._rope((h @ w[p + "attn_q.weight"].T).reshape(n, self.n_head, hd))
            k = self._rope((h @ w[p + "attn_k.weight"].T).reshape(n, self.n_kv, hd))
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, self.n_kv, hd)
            k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = np.einsum("hqk,khd->qhd", s, v).reshape(n, self.n_head * hd)
            x = x + a @ w[p + "attn_output.weight"].T
            h = self._norm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        return self._norm(x, w["output_norm.weight"]) @ self.out.T


def f64_check(ref: F64Llama, pids: list[int], gids: list[int], glog: list[float], gmargin: list[float]) -> dict:
    """Evaluate prompt+greedy ids in float64; at every step compare argmax, chosen logit and margin."""
    lg = ref.logits(pids + gids[:-1])[len(pids) - 1:]
    top2 = np.sort(lg, axis=-1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    chosen = lg[np.arange(len(gids)), gids]
    return {"argmax_agrees_all_steps": bool((lg.argmax(-1) == np.array(gids)).all()),
            "max_abs_chosen_logit_diff": float(np.abs(chosen - np.array(glog)).max()),
            "max_abs_margin_diff": float(np.abs(margins - np.array(gmargin)).max()),
            "min_margin_f64": round(float(margins.min()), 6)}


def generation(llm: llama_cpp.Llama, ref: F64Llama) -> list[dict]:
    q4_rows = [json.loads(line) for line in (GEN_DIR / "smollm2_greedy.jsonl").read_text(encoding="utf-8").split("\n")
               if line]
    rows = []
    with open(GEN_DIR / "smollm2_f32_greedy.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for q4 in q4_rows:
            name, text, pids = q4["name"], q4["prompt_text"], q4["prompt_ids"]
            assert llm.tokenize(text.encode("utf-8"), add_bos=True, special=True) == pids, name
            assert len(pids) <= SETTINGS["n_batch"], name  # the prompt is evaluated in one batch
            gids, glog, gmargin = greedy(llm, pids)
            gtext = llm.detokenize(gids, special=True).decode("utf-8", "replace")
            # Cross-check against llama.cpp's own greedy sampler (see llamacpp_goldens.py).
            llm.reset()
            sampled = []
            for t in llm.generate(pids, temp=0.0, top_k=1, reset=True):
                sampled.append(int(t))
                if len(sampled) >= len(gids) or is_eog(llm, int(t)):
                    break
            assert sampled == gids, (name, sampled, gids)
            row = {"name": name, "prompt_text": text, "prompt_ids": pids, "greedy_ids": gids,
                   "greedy_text": gtext, "greedy_logits": [round(x, 4) for x in glog],
                   "greedy_margins": [round(x, 4) for x in gmargin], "reference": REFERENCE, "settings": SETTINGS}
            chk = f64_check(ref, pids, gids, glog, gmargin)
            row["f64_check"] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in chk.items()}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows.append(row)
            first_diff = next((i for i, (x, y) in enumerate(zip(gids, q4["greedy_ids"])) if x != y),
                              None if len(gids) == len(q4["greedy_ids"]) else min(len(gids), len(q4["greedy_ids"])))
            print(f"{name}: {gtext!r}\n  min margin {min(gmargin):.4f} at step {int(np.argmin(gmargin))}; "
                  f"first step differing from Q4_1 golden: {first_diff}; f64 check {chk}", file=sys.stderr)
    return rows


def logits_golden(llm: llama_cpp.Llama, ref: F64Llama) -> None:
    logit_rows = []
    for name, text in [("raw_capital_france", "The capital of France is"), ("raw_hello", "Hello, my name is")]:
        pids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(pids)
        logits = last_logits(llm)
        order = np.argsort(-logits, kind="stable")[:10]
        logit_rows.append({
            "name": name, "prompt_text": text, "prompt_ids": pids,
            "top10": [[int(i), round(float(logits[i]), 5)] for i in order],
            "top10_pieces": [llm.detokenize([int(i)], special=True).decode("utf-8", "replace") for i in order],
            "logit_mean": round(float(logits.mean()), 5), "logit_std": round(float(logits.std()), 5),
            "f64_max_abs_diff_all_logits": round(float(np.abs(ref.logits(pids)[-1] - logits).max()), 7),
        })
    doc = {
        "llama_cpp_python": llama_cpp.__version__,
        "reference": REFERENCE,
        "settings": SETTINGS,
        "note": "llama.cpp CPU build on the generating machine; Q4_1 (+Q8_0 token_embd) weights dequantized to F32 "
                "by gguf-py; F32 matmuls, F32 KV cache, no flash attention: only f32 rounding-order differences "
                "remain, so compare with a small tolerance. f64_max_abs_diff_all_logits = max over all 49152 "
                "logits of |llama.cpp - independent float64 numpy forward pass (F64Llama)|.",
        "prompts": logit_rows,
    }
    head = json.dumps({k: v for k, v in doc.items() if k != "prompts"}, indent=1, ensure_ascii=False)
    rows = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in logit_rows)
    text = head[:-2] + ',\n "prompts": [\n  ' + rows + "\n ]\n}\n"
    json.loads(text)
    (GEN_DIR / "smollm2_f32_logits.json").write_text(text, encoding="utf-8")


def main() -> int:
    if "--force-convert" in sys.argv or not DST.exists():
        convert()
    verify_converted()
    llm = make_llm()
    ref = F64Llama()
    generation(llm, ref)
    logits_golden(llm, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
