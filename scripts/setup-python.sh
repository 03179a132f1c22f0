#!/usr/bin/env bash
# Creates/updates the Python environment used to make the tiny test models and the
# forward-pass goldens, and unpacks llama.cpp's HF->GGUF converter from the
# llama-cpp-python sdist (not built: only convert_hf_to_gguf.py, conversion/ and gguf-py/).
#
#   venv:      $LLAMA31_CACHE/venv            (default ~/.cache/llama31/venv)
#   converter: $LLAMA31_CACHE/llama.cpp-src/  (convert_hf_to_gguf.py, conversion/, gguf-py/)
#
# Idempotent: a venv whose installed requirements match scripts/requirements.txt is
# left alone, and the converter is unpacked once.
# Then:  ~/.cache/llama31/venv/bin/python scripts/make-tiny-models.py --out ~/.cache/llama31/tiny
# or pass --tiny to do that here too (skipped when $LLAMA31_CACHE/tiny/manifest.json was made
# by the same make-tiny-models.py and requirements.txt). --tiny also writes SmolLM2-135M-Instruct.F32.gguf
# (scripts/make-smollm2-f32.py) when scripts/fetch-fixtures.sh has fetched the Q4_1 GGUF.
set -euo pipefail

MAKE_TINY=0
for arg in "$@"; do
  case "$arg" in
    --tiny) MAKE_TINY=1 ;;
    *) echo "usage: $0 [--tiny]" >&2; exit 2 ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
PY="${PYTHON:-python3}"
VENV="$CACHE/venv"
REQ="$HERE/requirements.txt"
LCP_VERSION="0.3.36"
SRC="$CACHE/llama.cpp-src"

mkdir -p "$CACHE"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating venv $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing $REQ into $VENV (torch is large, this takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" >"$stamp"
fi

if [ ! -f "$SRC/.done-$LCP_VERSION" ]; then
  echo "fetching llama-cpp-python==$LCP_VERSION sdist for convert_hf_to_gguf.py" >&2
  dl="$CACHE/dl/lcp-sdist"
  rm -rf "$dl" && mkdir -p "$dl"
  # --no-binary for this package only: its build deps (cmake, ninja) stay wheels,
  # and preparing metadata does not compile llama.cpp.
  "$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    -d "$dl" "llama-cpp-python==$LCP_VERSION"
  sdist="$(ls "$dl"/llama_cpp_python-"$LCP_VERSION".tar.gz)"
  top="llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  tar -xzf "$sdist" -C "$SRC.tmp" --strip-components=3 \
    "$top/convert_hf_to_gguf.py" "$top/conversion" "$top/gguf-py" "$top/LICENSE"
  rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
  rm -rf "$dl"
  touch "$SRC/.done-$LCP_VERSION"
fi
echo "python env ready: $VENV ; converter: $SRC/convert_hf_to_gguf.py" >&2

if [ "$MAKE_TINY" = 1 ]; then
  TINY="$CACHE/tiny"
  tstamp="$TINY/.generator.sha256"
  twant="$(cat "$HERE/make-tiny-models.py" "$REQ" | sha256sum | cut -d' ' -f1)"
  if [ -f "$TINY/manifest.json" ] && [ "$(cat "$tstamp" 2>/dev/null || true)" = "$twant" ]; then
    echo "tiny models up to date: $TINY" >&2
  else
    echo "writing tiny models to $TINY" >&2
    rm -f "$tstamp"
    "$VENV/bin/python" "$HERE/make-tiny-models.py" --out "$TINY" >/dev/null
    echo "$twant" >"$tstamp"
    echo "tiny models ready: $TINY" >&2
  fi
  # SmolLM2's Q4_1 dequantized to F32 by gguf-py: input of the quantizer goldens, reference of the KL tests.
  if [ -f "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    "$VENV/bin/python" "$HERE/make-smollm2-f32.py"
  fi
fi
