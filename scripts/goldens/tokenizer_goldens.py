#!/usr/bin/env python3
"""Llama 3 tokenizer goldens from Meta's reference tokenizer (llama_models 0.3.0 + tiktoken).

Reads goldens/tokenizer/corpus.jsonl (make_corpus.py) and writes:
  goldens/tokenizer/llama3_ids.jsonl   line i = Meta Tokenizer.encode(corpus[i], bos=False, eos=False)
  goldens/tokenizer/llama3_special.json special token names -> ids, bos/eos/eot/eom, allowed_special examples
  goldens/tokenizer/hf_ids.jsonl        only if HF `tokenizers` disagrees with Meta somewhere
  goldens/tokenizer/hf_vs_meta.json     summary of the cross-check (counts per category)

Run with the goldens venv: ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/tokenizer_goldens.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from llama_models.llama3.tokenizer import Tokenizer
from tokenizers import Tokenizer as HfTokenizer

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
TOK_DIR = REPO / "goldens" / "tokenizer"


def read_corpus() -> list[str]:
    text = (TOK_DIR / "corpus.jsonl").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == ""
    return [json.loads(line) for line in lines[:-1]]


def read_categories(n: int) -> list[str]:
    cats = json.loads((TOK_DIR / "corpus_categories.json").read_text(encoding="utf-8"))
    out = [""] * n
    for start, end, cat in cats:
        for i in range(start, end):
            out[i] = cat
    return out


def ids_line(ids: list[int]) -> str:
    return json.dumps(ids, separators=(",", ":"))


def main() -> int:
    corpus = read_corpus()
    cats = read_categories(len(corpus))
    meta = Tokenizer(CACHE / "tokenizer.model")
    hf = HfTokenizer.from_file(str(CACHE / "tokenizer.json"))

    meta_ids = []
    hf_ids = []
    disagreements: dict[str, list[int]] = {}
    for i, s in enumerate(corpus):
        m = meta.encode(s, bos=False, eos=False)
        assert meta.decode(m) == s, f"Meta round trip failed on line {i}"
        h = hf.encode(s, add_special_tokens=False).ids
        meta_ids.append(m)
        hf_ids.append(h)
        if m != h:
            disagreements.setdefault(cats[i], []).append(i)

    with open(TOK_DIR / "llama3_ids.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for m in meta_ids:
            f.write(ids_line(m) + "\n")

    n_dis = sum(len(v) for v in disagreements.values())
    hf_path = TOK_DIR / "hf_ids.jsonl"
    if n_dis:
        with open(hf_path, "w", encoding="utf-8", newline="\n") as f:
            for h in hf_ids:
                f.write(ids_line(h) + "\n")
    elif hf_path.exists():
        hf_path.unlink()
    summary = {
        "corpus_lines": len(corpus),
        "disagreements": n_dis,
        "by_category": {k: {"count": len(v), "lines": v} for k, v in sorted(disagreements.items())},
        "meta": "llama_models 0.3.0 Tokenizer(tokenizer.model).encode(s, bos=False, eos=False)",
        "hf": "tokenizers.Tokenizer.from_file(tokenizer.json).encode(s, add_special_tokens=False).ids",
    }
    (TOK_DIR / "hf_vs_meta.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")

    # Special tokens.
    examples_src = [
        "<|begin_of_text|>Hello<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
        "<|python_tag|>print(1)<|eom_id|>",
        "text <|reserved_special_token_5|> more <|eot_id",
        "<|eot_id|><|eot_id|>",
        "<|image|><|finetune_right_pad_id|><|step_id|>",
        "<| eot_id |> <|EOT_ID|> <|reserved_special_token_250|>",
    ]
    examples = []
    for s in examples_src:
        examples.append({
            "text": s,
            "allowed_special_all": meta.encode(s, bos=False, eos=False, allowed_special="all"),
            "ordinary": meta.encode(s, bos=False, eos=False),
            "bos_eos": meta.encode(s, bos=True, eos=True, allowed_special="all"),
        })
    special = {
        "n_words": meta.n_words,
        "num_base_tokens": meta.n_words - len(meta.special_tokens),
        "bos_id": meta.bos_id,
        "eos_id": meta.eos_id,
        "eot_id": meta.eot_id,
        "eom_id": meta.eom_id,
        "python_tag_id": meta.python_tag_id,
        "pad_id": meta.pad_id,
        "stop_tokens": meta.stop_tokens,
        "pat_str": meta.pat_str,
        "special_tokens": meta.special_tokens,
        "examples": examples,
    }
    assert len(meta.special_tokens) == 256
    (TOK_DIR / "llama3_special.json").write_text(json.dumps(special, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    print(f"llama3_ids.jsonl: {len(meta_ids)} lines, {sum(map(len, meta_ids))} ids", file=sys.stderr)
    print(f"HF vs Meta disagreements: {n_dis} {json.dumps({k: len(v) for k, v in disagreements.items()})}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
