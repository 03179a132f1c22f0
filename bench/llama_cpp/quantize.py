#!/usr/bin/env python3
"""llama.cpp's quantizer (llama_model_quantize, as llama-quantize runs it) through llama-cpp-python.

usage: quantize.py IN.gguf OUT.gguf TYPE [THREADS]   TYPE: Q8_0, Q4_K_M, Q4_0, Q6_K, …
"""

import sys

import llama_cpp

FTYPES = {
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q6_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
}


def main():
    src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.nthread = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize failed: {rc}")


if __name__ == "__main__":
    main()
