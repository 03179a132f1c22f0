#!/usr/bin/env python3
"""`llama31 quantize` against llama.cpp's own quantizer (llama-cpp-python 0.3.36, `llama_model_quantize`).

1. SmolLM2-135M-Instruct.F32.gguf (SmolLM2's Q4_1 dequantized to F32, see smollm2_f32.py) is quantized to
   Q8_0, Q4_0 and Q4_K_M by llama.cpp and by `llama31 quantize`; every tensor's name, type, shape and bytes
   are compared, and the metadata and the whole files too.
2. The tiny random Llama 3.1 checkpoints (scripts/make-tiny-models.py): llama.cpp quantizes the GGUF its
   `convert_hf_to_gguf.py` wrote from `hf-untied` (BF16) to Q8_0 and Q4_K_M; `llama31 quantize` starts from
   the HF directory and from the Meta directories (same weights) and must give the same tensors.
3. llama.cpp loads every file `llama31 quantize` wrote and generates from it: greedy tokens from our
   SmolLM2 files must equal those from llama.cpp's files.
4. `llama-perplexity --kl-divergence-base` + `--kl-divergence` (protocol and arithmetic ported in
   llamacpp_kl.py) on a short text: SmolLM2 F32 as the base, llama.cpp's Q8_0 and Q4_K_M files against it.
   crates/cli/tests/kl_divergence.rs runs `llama31 perplexity --save-logits / --kl-divergence-base` on the
   same text and compares.

Writes goldens/quantize/llamacpp_quantize.json: for each case llama.cpp's tensor list (name, type, shape,
sha256 of the data) and the comparison outcome. The Rust test crates/quantize/tests/llamacpp.rs
quantizes the same inputs and checks types and hashes against it.

Run with the goldens venv after `cargo build --release -p llama31-cli` (CARGO_TARGET_DIR honoured):
    ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/quantize_llamacpp.py [SECTION ...]
SECTION is smollm2, tiny or kl (default: all); the others are kept from the existing file.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llamacpp_kl  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
sys.path.insert(0, str(CACHE / "llama.cpp-src" / "gguf-py"))
import gguf  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = Path(os.environ.get("LLAMA31_BIN", TARGET / "release" / "llama31"))
OUT = ROOT / "goldens" / "quantize" / "llamacpp_quantize.json"
FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}
TINY_FTYPES = {"Q8_0": 7, "Q4_K_M": 15}
PROMPT = "The capital of France is"
KL_TEXT = ROOT / "goldens" / "forward" / "text_long.txt"
KL_CTX, KL_CHUNKS = 128, 3


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llamacpp_quantize(src: Path, dst: Path, ftype: int) -> float:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    t = time.time()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize failed for {src} -> {dst}"
    return time.time() - t


def ours_quantize(src: Path, dst: Path, ftype: str) -> float:
    t = time.time()
    subprocess.run([str(BIN), "quantize", str(src), str(dst), "--type", ftype], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.time() - t


def tensors(p: Path) -> list[dict]:
    r = gguf.GGUFReader(p)
    return [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
             "sha256": hashlib.sha256(bytes(t.data.tobytes())).hexdigest()} for t in r.tensors]


def metadata(p: Path) -> dict:
    r = gguf.GGUFReader(p)
    out = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        v = f.contents()
        out[f.name] = v
    return out


def compact(ts: list[dict]) -> dict:
    """name -> "TYPE sha256", in file order."""
    return {t["name"]: f'{t["type"]} {t["sha256"]}' for t in ts}


def compare(ref: list[dict], ours: list[dict]) -> dict:
    assert [t["name"] for t in ref] == [t["name"] for t in ours], "tensor names/order differ"
    type_diff = [t["name"] for t, o in zip(ref, ours) if (t["type"], t["shape"]) != (o["type"], o["shape"])]
    byte_diff = [t["name"] for t, o in zip(ref, ours) if t["sha256"] != o["sha256"]]
    by_type: dict[str, list[int]] = {}
    for t, o in zip(ref, ours):
        same = by_type.setdefault(t["type"], [0, 0])
        same[0] += t["sha256"] == o["sha256"]
        same[1] += 1
    return {"types_equal": not type_diff, "type_mismatches": type_diff, "bytes_equal": not byte_diff,
            "byte_mismatches": byte_diff, "identical_by_type": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_type.items())}}


def greedy(path: Path, n: int = 16) -> list[int]:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=os.cpu_count() or 1, verbose=False,
                          seed=0, n_gpu_layers=0)
    ids = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
    out = []
    for tok in llm.generate(ids, temp=0.0, top_k=1):
        out.append(int(tok))
        if len(out) == n or llm.token_eos() == tok:
            break
    del llm
    return out


def smollm2(tmp: Path) -> dict:
    src = CACHE / "SmolLM2-135M-Instruct.F32.gguf"
    res = {"input": src.name, "input_sha256": sha256_file(src), "ftypes": {}}
    for name, ftype in FTYPES.items():
        ref_p, our_p = tmp / f"ref-{name}.gguf", tmp / f"ours-{name}.gguf"
        t_ref = llamacpp_quantize(src, ref_p, ftype)
        t_ours = ours_quantize(src, our_p, name)
        ref, ours = tensors(ref_p), tensors(our_p)
        md_ref, md_ours = metadata(ref_p), metadata(our_p)
        cmp = compare(ref, ours)
        cmp["metadata_equal"] = md_ref == md_ours
        cmp["file_sha256_llamacpp"] = sha256_file(ref_p)
        cmp["file_identical"] = cmp["file_sha256_llamacpp"] == sha256_file(our_p)
        g_ref, g_ours = greedy(ref_p), greedy(our_p)
        cmp["llamacpp_loads_ours"] = True
        cmp["greedy_llamacpp_file"] = g_ref
        cmp["greedy_our_file"] = g_ours
        cmp["greedy_equal"] = g_ref == g_ours
        cmp["seconds"] = {"llamacpp": round(t_ref, 2), "llama31": round(t_ours, 2)}
        res["ftypes"][name] = {"llamacpp_tensors": compact(ref), "comparison": cmp}
        print(name, {k: v for k, v in cmp.items() if k not in ("byte_mismatches", "type_mismatches")}, file=sys.stderr)
    return res


def tiny(tmp: Path) -> dict:
    tiny_dir = CACHE / "tiny"
    manifest = json.loads((tiny_dir / "manifest.json").read_text())
    src_gguf = tiny_dir / manifest["models"]["gguf"]["file"]
    res = {"converted_by_llamacpp": src_gguf.name, "converted_sha256": sha256_file(src_gguf),
           "tensor_digests": {k: {n: t["sha256"] for n, t in manifest["models"][k]["tensors"].items()}
                              for k in ("hf-untied", "meta", "meta-mp2")},
           "ftypes": {}}
    for name, ftype in TINY_FTYPES.items():
        ref_p = tmp / f"tiny-ref-{name}.gguf"
        llamacpp_quantize(src_gguf, ref_p, ftype)
        ref = tensors(ref_p)
        entry = {"llamacpp_tensors": compact(ref), "comparison": {}}
        for variant in ("hf-untied", "meta", "meta-mp2"):
            our_p = tmp / f"tiny-{variant}-{name}.gguf"
            ours_quantize(tiny_dir / variant, our_p, name)
            cmp = compare(ref, tensors(our_p))
            md_ref, md_ours = metadata(ref_p), metadata(our_p)
            keys = sorted(k for k in md_ref if k.startswith("llama.") or k.startswith("tokenizer.ggml."))
            differ = [k for k in keys if md_ref.get(k) != md_ours.get(k)]
            cmp["llama_and_tokenizer_keys_differing"] = differ
            greedy(our_p, 4)
            cmp["llamacpp_loads_ours"] = True
            entry["comparison"][variant] = cmp
            print("tiny", variant, name, {k: v for k, v in cmp.items() if k != "byte_mismatches"}, file=sys.stderr)
        res["ftypes"][name] = entry
    return res


def kl(tmp: Path) -> dict:
    src = CACHE / "SmolLM2-135M-Instruct.F32.gguf"
    text = KL_TEXT.read_text(encoding="utf-8")
    toks, saved, base = llamacpp_kl.save_base(str(src), text, KL_CTX, KL_CHUNKS)
    res = {"text": str(KL_TEXT.relative_to(ROOT)), "ctx": KL_CTX, "chunks": KL_CHUNKS, "base": base,
           "settings": "llama-cpp-python defaults (F16 KV cache), n_batch = n_ctx, all logits",
           "models": {}}
    for name in ("Q8_0", "Q4_K_M"):
        p = tmp / f"kl-{name}.gguf"
        llamacpp_quantize(src, p, FTYPES[name])
        res["models"][name] = llamacpp_kl.kl_against(str(p), toks, saved, KL_CTX)
        print("kl", name, res["models"][name]["kld"], res["models"][name]["same_top"], file=sys.stderr)
    return res


def main() -> None:
    sections = sys.argv[1:] or ["smollm2", "tiny", "kl"]
    if "smollm2" in sections or "tiny" in sections:
        assert BIN.is_file(), f"build llama31 first ({BIN})"
    out = json.loads(OUT.read_text()) if OUT.is_file() else {}
    out["reference"] = f"llama-cpp-python {llama_cpp.__version__} llama_model_quantize (no imatrix, default params)"
    with tempfile.TemporaryDirectory(prefix="llama31-quant-") as d:
        tmp = Path(d)
        for name, fn in (("smollm2", smollm2), ("tiny", tiny), ("kl", kl)):
            if name in sections:
                out[name] = fn(tmp)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
