#!/usr/bin/env python3
"""SmolLM2 (GGUF) goldens from llama.cpp via llama-cpp-python 0.3.36 (CPU build).

Writes:
  goldens/tokenizer/smollm2_ids.jsonl     line i = llama.cpp tokenize(corpus[i], add_bos=False, special=False)
  goldens/tokenizer/smollm2_meta.json     BOS behaviour, tokenizer.ggml.pre, bos/eos ids, chat template, ...
  goldens/generation/smollm2_greedy.jsonl greedy (argmax of llama.cpp logits) continuations, 32 tokens max
  goldens/generation/smollm2_logits.json  top-10 (id, logit) at the last position for 2 short prompts

Run with the goldens venv: ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/llamacpp_goldens.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import llama_cpp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_goldens import compile_template, read_gguf_kv, render  # noqa: E402
from tokenizers import Tokenizer as HfTokenizer  # noqa: E402
from tokenizers import decoders, models, pre_tokenizers  # noqa: E402

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
TOK_DIR = REPO / "goldens" / "tokenizer"
GEN_DIR = REPO / "goldens" / "generation"
GGUF = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
N_GREEDY = 32


def read_corpus() -> list[str]:
    lines = (TOK_DIR / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    return [json.loads(line) for line in lines[:-1]]


def ids_line(ids) -> str:
    return json.dumps([int(i) for i in ids], separators=(",", ":"))


def is_eog(llm: llama_cpp.Llama, tok: int) -> bool:
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    return bool(llama_cpp.llama_vocab_is_eog(vocab, tok))


def hf_crosscheck(corpus: list[str]) -> dict:
    """Second, independent check of smollm2_ids.jsonl: HF `tokenizers` BPE rebuilt from the GGUF vocab and
    merges with SmolLM's pre-tokenizer (Digits(individual_digits=True) + ByteLevel(add_prefix_space=False)).
    Control tokens are not added as special tokens (like llama.cpp with special=False)."""
    kv = read_gguf_kv(GGUF, {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
    vocab = {t: i for i, t in enumerate(kv["tokenizer.ggml.tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in kv["tokenizer.ggml.merges"]]
    tk = HfTokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    gold = [json.loads(line) for line in (TOK_DIR / "smollm2_ids.jsonl").read_text(encoding="utf-8").split("\n")[:-1]]
    bad = [i for i, (s, g) in enumerate(zip(corpus, gold)) if tk.encode(s, add_special_tokens=False).ids != g]
    print(f"SmolLM2: HF reconstruction vs llama.cpp disagreements: {len(bad)}", file=sys.stderr)
    return {"reference": "tokenizers BPE(GGUF vocab+merges), Digits(individual)+ByteLevel", "lines": len(gold),
            "disagreements": len(bad), "disagreeing_lines": bad}


def tokenizer_goldens() -> dict:
    llm = llama_cpp.Llama(model_path=str(GGUF), vocab_only=True, verbose=False)
    corpus = read_corpus()
    n_ids = 0
    with open(TOK_DIR / "smollm2_ids.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for s in corpus:
            ids = llm.tokenize(s.encode("utf-8"), add_bos=False, special=False)
            n_ids += len(ids)
            f.write(ids_line(ids) + "\n")
    # Typed values straight from the GGUF (llm.metadata stringifies them).
    keys = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id", "tokenizer.chat_template"]
    md = read_gguf_kv(GGUF, set(keys))
    probe = "Hello world"
    probe_special = "<|im_start|>user\nHi<|im_end|>\n"
    eog = [t for t in range(llm.n_vocab()) if is_eog(llm, t)]
    meta = {
        "llama_cpp_python": llama_cpp.__version__,
        "gguf": GGUF.name,
        **{k: md.get(k) for k in keys if k != "tokenizer.chat_template"},
        "token_bos": llm.token_bos(),
        "token_eos": llm.token_eos(),
        "bos_piece": llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace"),
        "eos_piece": llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace"),
        "eog_ids": eog,
        "eog_pieces": [llm.detokenize([t], special=True).decode("utf-8", "replace") for t in eog],
        "n_vocab": llm.n_vocab(),
        "tokenizer.chat_template": md.get("tokenizer.chat_template"),
        "probe": probe,
        "probe_add_bos_true": llm.tokenize(probe.encode("utf-8"), add_bos=True, special=False),
        "probe_add_bos_false": llm.tokenize(probe.encode("utf-8"), add_bos=False, special=False),
        "probe_special": probe_special,
        "probe_special_true": llm.tokenize(probe_special.encode("utf-8"), add_bos=False, special=True),
        "probe_special_false": llm.tokenize(probe_special.encode("utf-8"), add_bos=False, special=False),
        "corpus_ids_total": n_ids,
    }
    meta["adds_bos"] = meta["probe_add_bos_true"] != meta["probe_add_bos_false"]
    meta["hf_reconstruction_check"] = hf_crosscheck(corpus)
    (TOK_DIR / "smollm2_meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"smollm2_ids.jsonl: {len(corpus)} lines, {n_ids} ids; adds_bos={meta['adds_bos']}", file=sys.stderr)
    del llm
    return meta


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    # With logits_all=False, llama-cpp-python 0.3.36's eval() no longer copies logits into
    # llm.scores, so read the last row straight from the context (the batch requests logits for
    # its last token only).
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.array(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)), dtype=np.float32, copy=True)


def greedy(llm: llama_cpp.Llama, prompt_ids: list[int]) -> tuple[list[int], list[float], list[float]]:
    llm.reset()
    llm.eval(prompt_ids)
    out, top_logits, margins = [], [], []
    for _ in range(N_GREEDY):
        logits = last_logits(llm)
        tok = int(np.argmax(logits))
        out.append(tok)
        top_logits.append(float(logits[tok]))
        top2 = np.partition(logits, -2)[-2:]
        margins.append(float(top2[1] - top2[0]))
        if is_eog(llm, tok):
            break
        llm.eval([tok])
    return out, top_logits, margins


def generation_goldens(meta: dict) -> None:
    llm = llama_cpp.Llama(model_path=str(GGUF), n_ctx=2048, n_threads=2, logits_all=False, verbose=False, seed=0)
    tmpl = compile_template(meta["tokenizer.chat_template"])
    special = {"bos_token": meta["bos_piece"], "eos_token": meta["eos_piece"]}

    def chat(msgs):
        return render(tmpl, msgs, add_generation_prompt=True, special=special)

    prompts = [
        ("chat_capital_france", chat([{"role": "user", "content": "What is the capital of France?"}])),
        ("chat_system_haiku", chat([{"role": "system", "content": "You are a concise poet."},
                                    {"role": "user", "content": "Write a haiku about the sea."}])),
        ("chat_multi_turn", chat([{"role": "user", "content": "Hi!"},
                                  {"role": "assistant", "content": "Hello! How can I help you today?"},
                                  {"role": "user", "content": "List three primary colors."}])),
        ("raw_capital_france", "The capital of France is"),
        ("raw_python_def", "def fibonacci(n):\n    "),
        ("raw_once_upon", "Once upon a time, there was a"),
    ]
    GEN_DIR.mkdir(parents=True, exist_ok=True)
    with open(GEN_DIR / "smollm2_greedy.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for name, text in prompts:
            pids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            gids, glog, gmargin = greedy(llm, pids)
            gtext = llm.detokenize(gids, special=True).decode("utf-8", "replace")
            # Cross-check the manual argmax loop against llama.cpp's own greedy sampler.
            # llm.reset() first so generate() evaluates the whole prompt in one batch like greedy() does:
            # re-evaluating only the last prompt token (its prefix-cache path) changes logits by up to
            # ~0.4 on this Q4_1 model (batched vs single-token kernels) and can flip near-ties.
            llm.reset()
            sampled = []
            for t in llm.generate(pids, temp=0.0, top_k=1, reset=True):
                sampled.append(int(t))
                if len(sampled) >= len(gids) or is_eog(llm, int(t)):
                    break
            assert sampled == gids, (name, sampled, gids)
            row = {"name": name, "prompt_text": text, "prompt_ids": pids, "greedy_ids": gids,
                   "greedy_text": gtext, "greedy_logits": [round(x, 4) for x in glog],
                   "greedy_margins": [round(x, 4) for x in gmargin]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"{name}: {gtext!r}", file=sys.stderr)

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
        })
    doc = {
        "llama_cpp_python": llama_cpp.__version__,
        "settings": {"n_ctx": 2048, "n_threads": 2, "logits_all": False, "add_bos": True, "special": True},
        "note": "llama.cpp CPU build (GGML_NATIVE) on the generating machine; Q4_1 weights; logits are llama.cpp's, "
                "not HF's: compare with a tolerance.",
        "prompts": logit_rows,
    }
    head = json.dumps({k: v for k, v in doc.items() if k != "prompts"}, indent=1, ensure_ascii=False)
    rows = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in logit_rows)
    text = head[:-2] + ',\n "prompts": [\n  ' + rows + "\n ]\n}\n"
    json.loads(text)
    (GEN_DIR / "smollm2_logits.json").write_text(text, encoding="utf-8")


def main() -> int:
    meta = tokenizer_goldens()
    generation_goldens(meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
