#!/usr/bin/env python3
"""llama.cpp's side of bench/quantize/run.sh: quantize the F32 GGUF with llama.cpp (`llama_model_quantize`),
save the F32 model's log-probs over the text and report each quantized model against them, as
`llama-perplexity --kl-divergence-base` + `--kl-divergence` would (protocol and arithmetic ported in
scripts/goldens/llamacpp_kl.py; llama-cpp-python has no perplexity tool).

usage: kl_llamacpp.py F32.gguf TEXT CTX CHUNKS WORKDIR TYPE... ; prints one JSON object per model.
"""
import ctypes
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "goldens"))
import llama_cpp  # noqa: E402
import llamacpp_kl as kl  # noqa: E402

FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}


def main() -> None:
    f32, text_path, n_ctx, chunks, work = sys.argv[1:6]
    types = sys.argv[6:]
    n_ctx, chunks, work = int(n_ctx), int(chunks), Path(work)
    text = Path(text_path).read_text(encoding="utf-8")
    t = time.time()
    toks, saved, base = kl.save_base(f32, text, n_ctx, chunks)
    print(json.dumps({"model": "F32 (base)", **base, "seconds": round(time.time() - t, 1)}), flush=True)
    for name in types:
        out = work / f"llamacpp-{name}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = FTYPES[name]
        assert llama_cpp.llama_model_quantize(f32.encode(), str(out).encode(), ctypes.byref(params)) == 0
        t = time.time()
        r = kl.kl_against(str(out), toks, saved, n_ctx)
        print(json.dumps({"model": name, **r, "seconds": round(time.time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
