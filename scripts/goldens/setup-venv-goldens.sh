#!/usr/bin/env bash
# Idempotently (re)create the Python venv used to generate goldens/.
# Usage: scripts/goldens/setup-venv-goldens.sh [--force]
# The venv lives in $LLAMA31_CACHE/venv-goldens (default ~/.cache/llama31/venv-goldens).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
VENV="$CACHE/venv-goldens"
LLAMA_CPP_PY_VERSION="0.3.36"
if [[ "${1:-}" == "--force" ]]; then rm -rf "$VENV"; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --upgrade pip wheel setuptools
# llama-models is installed without its optional torch extra (not needed for
# tokenizer / chat_format / tool_utils).
"$PY" -m pip install -r "$HERE/requirements-goldens.txt"
if ! "$PY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$LLAMA_CPP_PY_VERSION' else 1)" 2>/dev/null; then
  # Built from source (sdist) on CPU. cmake/ninja come from PyPI as build deps.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    "$PY" -m pip install --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PY_VERSION"
fi
"$PY" -c "import tiktoken, tokenizers, jinja2, numpy, PIL, pydantic, llama_cpp; \
from llama_models.llama3 import tokenizer, chat_format, tool_utils; \
print('venv ok: llama_cpp', llama_cpp.__version__, 'tokenizers', tokenizers.__version__, 'tiktoken', tiktoken.__version__)"
